// Streaming detokenization: deltas never split a UTF-8 character, their concatenation equals
// decode(), and the SentencePiece leading space is handled as the reference decoders do.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "engine/detokenizer.h"
#include "engine/text_unicode.h"
#include "engine/tokenizer.h"

namespace moat::engine {
namespace {

namespace fs = std::filesystem;
const fs::path fixtures = MOAT_FIXTURES_DIR;
const fs::path golden = fs::path(MOAT_SOURCE_DIR) / "tests/golden/text";

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_char_length(s, i);
    if (n == 1 && static_cast<unsigned char>(s[i]) >= 0x80) return false;
    i += n;
  }
  return true;
}

const char* texts[] = {
    "Once upon a time, there was a little girl.",
    "emoji 😀👍🏽 and CJK 中文测试 and 🇫🇷 flags",
    "  two leading spaces",
    "Ünïcödé naïve café ∑ λ",
    "tabs\tand\nnewlines\n\n",
};

void check_stream(const tokenizer& tok, const std::string& text) {
  const auto ids = tok.encode(text, /*add_special=*/true);
  detokenizer d(tok);
  std::string streamed;
  for (token_id id : ids) {
    const std::string delta = d.push(id);
    EXPECT_TRUE(valid_utf8(delta)) << "a delta split a character in \"" << text << "\"";
    streamed += delta;
  }
  streamed += d.finish();
  EXPECT_EQ(streamed, tok.decode(ids)) << text;
}

std::vector<fs::path> tokenizer_paths() {
  return {fixtures / "tinystories-656K-hf", fixtures / "llama2-tokenizer" / "tokenizer.model",
          fixtures / "llamacpp-vocab" / "ggml-vocab-llama-spm.gguf", fixtures / "llamacpp-vocab" / "ggml-vocab-gpt-2.gguf",
          golden / "bpe-llama3-style", fixtures / "llama2c-stories260K" / "tok512.bin"};
}

TEST(detokenizer, stream_equals_decode_and_is_always_valid_utf8) {
  int loaded = 0;
  for (const auto& p : tokenizer_paths()) {
    if (!fs::exists(p)) continue;
    auto tok = load_tokenizer(p);
    ++loaded;
    for (const char* t : texts) check_stream(*tok, t);
  }
  if (loaded == 0) GTEST_SKIP() << "no tokenizer fixtures under " << fixtures;
}

TEST(detokenizer, byte_fallback_pieces_join_into_one_character) {
  const fs::path model = fixtures / "llama2-tokenizer" / "tokenizer.model";
  if (!fs::exists(model)) GTEST_SKIP() << "fixture missing: " << model;
  auto tok = load_tokenizer(model);
  // "😀" is not a Llama 2 piece: it is four byte-fallback tokens <0xF0><0x9F><0x98><0x80>.
  const auto ids = tok->encode("😀", false);
  ASSERT_GE(ids.size(), 4u);
  detokenizer d(*tok);
  std::vector<std::string> deltas;
  for (token_id id : ids) deltas.push_back(d.push(id));
  EXPECT_EQ(deltas.back(), "😀");
  for (size_t i = 0; i + 1 < deltas.size(); ++i) EXPECT_TRUE(valid_utf8(deltas[i]));
  EXPECT_EQ(d.pending_bytes(), 0u);
}

TEST(detokenizer, leading_space_is_stripped_once_or_kept_on_request) {
  const fs::path model = fixtures / "llama2-tokenizer" / "tokenizer.model";
  if (!fs::exists(model)) GTEST_SKIP() << "fixture missing: " << model;
  auto tok = load_tokenizer(model);
  const auto ids = tok->encode("Hello world", true);  // <s> ▁Hello ▁world
  std::string stripped, kept;
  detokenizer a(*tok), b(*tok, {.skip_special = true, .strip_leading_space = false});
  for (token_id id : ids) stripped += a.push(id), kept += b.push(id);
  EXPECT_EQ(stripped, "Hello world");
  EXPECT_EQ(kept, " Hello world");
}

TEST(detokenizer, special_tokens_are_skipped_or_shown) {
  const fs::path model = fixtures / "llama2-tokenizer" / "tokenizer.model";
  if (!fs::exists(model)) GTEST_SKIP() << "fixture missing: " << model;
  auto tok = load_tokenizer(model);
  detokenizer hide(*tok), show(*tok, {.skip_special = false, .strip_leading_space = std::nullopt});
  EXPECT_EQ(hide.push(tok->eos_id()), "");
  EXPECT_EQ(show.push(tok->eos_id()), "</s>");
}

TEST(detokenizer, invalid_bytes_become_replacement_characters_without_stalling) {
  EXPECT_EQ(utf8_sanitize("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(utf8_sanitize("\xE2\x82" "x"), "\xEF\xBF\xBD" "x");  // one U+FFFD per maximal invalid subpart
  EXPECT_EQ(utf8_sanitize("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogates are invalid
  EXPECT_EQ(utf8_complete_prefix("ab\xE2\x82"), 2u);  // an unfinished "€" waits
  EXPECT_EQ(utf8_complete_prefix("ab\xE2\x82\xAC"), 5u);
  EXPECT_EQ(utf8_complete_prefix("ab\xFF"), 3u);       // never a valid start: emitted at once
  EXPECT_EQ(utf8_complete_prefix("\xF0\x9F\x98"), 0u);
}

// Random ids through every tokenizer: no throw, every delta valid UTF-8, concat == decode.
TEST(detokenizer, random_ids_fuzz) {
  std::mt19937 rng(1234);
  int loaded = 0;
  for (const auto& p : tokenizer_paths()) {
    if (!fs::exists(p)) continue;
    auto tok = load_tokenizer(p);
    ++loaded;
    std::uniform_int_distribution<token_id> pick(-2, tok->vocab_size() + 2);
    for (int round = 0; round < 20; ++round) {
      std::vector<token_id> ids(40);
      for (auto& id : ids) id = pick(rng);
      detokenizer d(*tok);
      std::string s;
      for (token_id id : ids) {
        const std::string delta = d.push(id);
        ASSERT_TRUE(valid_utf8(delta));
        s += delta;
      }
      s += d.finish();
      EXPECT_EQ(s, tok->decode(ids)) << p;
    }
  }
  if (loaded == 0) GTEST_SKIP() << "no tokenizer fixtures under " << fixtures;
}

}  // namespace
}  // namespace moat::engine

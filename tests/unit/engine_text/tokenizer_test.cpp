// Tokenizer behaviour beyond the goldens: round trips, special tokens, end-of-generation ids,
// the llama2.c and GGUF paths, pre-tokenizer splits, and bad input that must not crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <simdjson.h>

#include "engine/tokenizer.h"
#include "engine/tokenizer_pretokenize.h"

namespace moat::engine {
namespace {

namespace fs = std::filesystem;
const fs::path fixtures = MOAT_FIXTURES_DIR;
const fs::path golden = fs::path(MOAT_SOURCE_DIR) / "tests/golden/text";

std::vector<std::string> split(pretokenizer_kind kind, std::string_view text) {
  std::vector<std::string_view> words;
  pretokenize(kind, text, words);
  return {words.begin(), words.end()};
}

TEST(pretokenize, gpt2_pattern_keeps_the_space_before_a_word) {
  using v = std::vector<std::string>;
  EXPECT_EQ(split(pretokenizer_kind::gpt2, "Hello  world!!"), (v{"Hello", " ", " world", "!!"}));
  EXPECT_EQ(split(pretokenizer_kind::gpt2, "I'm 12345 ok\n\n"), (v{"I", "'m", " 12345", " ok", "\n\n"}));
  EXPECT_EQ(split(pretokenizer_kind::gpt2, "a   "), (v{"a", "   "}));
}

TEST(pretokenize, llama3_pattern_groups_digits_by_three_and_newlines) {
  using v = std::vector<std::string>;
  EXPECT_EQ(split(pretokenizer_kind::llama3, "12345 DON'T"), (v{"123", "45", " DON", "'T"}));
  EXPECT_EQ(split(pretokenizer_kind::llama3, "x  \n\n  y"), (v{"x", "  \n\n", " ", " y"}));
  EXPECT_EQ(split(pretokenizer_kind::llama3, "(ok)..\n"), (v{"(ok", ")..\n"}));
}

TEST(tokenizer, llama2c_tok512_decodes_the_reference_story) {
  const fs::path dir = fixtures / "llama2c-stories260K";
  if (!fs::exists(dir / "tok512.bin")) GTEST_SKIP() << "fixture missing: " << dir;
  auto tok = load_tokenizer(dir / "tok512.bin");
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.load((dir / "expected_greedy.json").string());
  std::vector<token_id> ids;
  for (auto x : root["ids"].get_array()) ids.push_back(static_cast<token_id>(int64_t(x)));
  const std::string expected{std::string_view(root["text"])};
  EXPECT_EQ(tok->decode(ids), expected);
  // Encoding the story text again gives ids that decode to the same text (BPE by score is not
  // guaranteed to reproduce the sampled segmentation, only the text).
  const auto again = tok->encode(expected, false);
  EXPECT_EQ(tok->decode(again), expected);
  EXPECT_LT(again.size(), expected.size() / 2);  // merges happened: well under one id per byte
}

TEST(tokenizer, gguf_with_weights_reads_the_llama2_vocabulary) {
  const fs::path gguf = fixtures / "llama2-tiny-random-gguf" / "llama-2-tiny-random.gguf";
  const fs::path spm = fixtures / "llama2-tokenizer" / "tokenizer.model";
  if (!fs::exists(gguf) || !fs::exists(spm)) GTEST_SKIP() << "fixtures missing";
  auto a = load_tokenizer(gguf);
  auto b = load_tokenizer(spm);
  EXPECT_EQ(a->vocab_size(), 32000);
  for (const char* t : {"Hello world", "  spaces and\nnewlines", "emoji 😀 ünïcode 12345"}) {
    EXPECT_EQ(a->encode(t), b->encode(t)) << t;
    EXPECT_EQ(a->decode(a->encode(t)), t);
  }
  EXPECT_EQ(a->encode("x", true).front(), 1);  // add_bos
}

TEST(tokenizer, special_tokens_parse_only_when_asked) {
  auto tok = load_tokenizer(golden / "bpe-llama3-style");
  const token_id eot = *tok->find("<|eot_id|>");
  const auto with = tok->encode("hi<|eot_id|>", false, true);
  const auto without = tok->encode("hi<|eot_id|>", false, false);
  EXPECT_EQ(with.back(), eot);
  EXPECT_EQ(std::count(without.begin(), without.end(), eot), 0);
  EXPECT_GT(without.size(), with.size());
  EXPECT_EQ(tok->decode(with), "hi");
  EXPECT_EQ(tok->decode(with, /*skip_special=*/false), "hi<|eot_id|>");
  EXPECT_EQ(tok->decode(without), "hi<|eot_id|>");
  EXPECT_TRUE(tok->is_special(eot));
  EXPECT_EQ(tok->token_bytes(eot), "<|eot_id|>");
}

TEST(tokenizer, byte_level_round_trips_any_bytes) {
  const fs::path gguf = fixtures / "llamacpp-vocab" / "ggml-vocab-gpt-2.gguf";
  if (!fs::exists(gguf)) GTEST_SKIP() << "fixture missing: " << gguf;
  auto tok = load_tokenizer(gguf);
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int round = 0; round < 50; ++round) {
    std::string s(static_cast<size_t>(round * 3), '\0');
    for (char& c : s) c = static_cast<char>(byte(rng));
    std::string raw;
    for (token_id id : tok->encode(s, false, false)) raw += tok->token_bytes(id);
    EXPECT_EQ(raw, s);  // byte-level BPE loses nothing
  }
}

TEST(tokenizer, random_bytes_never_throw_in_any_tokenizer) {
  std::mt19937 rng(99);
  std::uniform_int_distribution<int> byte(0, 255);
  for (const fs::path& p : {fixtures / "tinystories-656K-hf", fixtures / "llama2-tokenizer" / "tokenizer.model",
                            fixtures / "llamacpp-vocab" / "ggml-vocab-llama-spm.gguf", golden / "bpe-llama3-style",
                            fixtures / "llama2c-stories260K" / "tok512.bin"}) {
    if (!fs::exists(p)) continue;
    auto tok = load_tokenizer(p);
    for (int round = 0; round < 30; ++round) {
      std::string s(static_cast<size_t>(round * 5), '\0');
      for (char& c : s) c = static_cast<char>(byte(rng));
      std::vector<token_id> ids;
      EXPECT_NO_THROW(ids = tok->encode(s)) << p;
      for (token_id id : ids) EXPECT_TRUE(id >= 0 && id < tok->vocab_size()) << p;
      EXPECT_NO_THROW(tok->decode(ids)) << p;
    }
  }
}

TEST(tokenizer, end_of_generation_ids_come_from_generation_config) {
  auto tok = load_tokenizer(golden / "bpe-llama3-style");
  EXPECT_EQ(tok->eos_text(), "<|eot_id|>");
  EXPECT_TRUE(tok->is_end_of_generation(*tok->find("<|end_of_text|>")));
  EXPECT_FALSE(tok->is_end_of_generation(*tok->find("<|begin_of_text|>")));
}

TEST(tokenizer, load_errors_name_the_file) {
  const fs::path tmp = fs::temp_directory_path() / "moat_text_bad_tokenizer";
  fs::create_directories(tmp);
  {
    std::ofstream(tmp / "tokenizer.json") << "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}";
  }
  try {
    load_tokenizer(tmp);
    ADD_FAILURE() << "expected tokenizer_error";
  } catch (const tokenizer_error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
  {
    std::ofstream(tmp / "tokenizer.json") << "{ not json";
  }
  EXPECT_THROW(load_tokenizer(tmp), tokenizer_error);
  fs::remove(tmp / "tokenizer.json");
  EXPECT_THROW(load_tokenizer(tmp), tokenizer_error);  // nothing to load
  EXPECT_THROW(load_tokenizer(tmp / "missing.gguf"), tokenizer_error);
  {
    std::ofstream(tmp / "bad.gguf") << "GGUF but truncated";
  }
  EXPECT_THROW(load_tokenizer(tmp / "bad.gguf"), tokenizer_error);
  {
    std::ofstream(tmp / "bad.bin") << "xx";
  }
  EXPECT_THROW(load_tokenizer(tmp / "bad.bin"), tokenizer_error);
  fs::remove_all(tmp);
}

}  // namespace
}  // namespace moat::engine

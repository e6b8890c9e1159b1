// The echo backend's text helpers: words, pieces, limits, chunks, embeddings.
#include "echo_text.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace moat::echo {
namespace {

TEST(EchoText, WordsAndPieces) {
  EXPECT_EQ(count_words(""), 0u);
  EXPECT_EQ(count_words("   "), 0u);
  EXPECT_EQ(count_words(" a\tb\n\nc "), 3u);
  EXPECT_EQ(split_pieces("a b  c"), (std::vector<std::string_view>{"a ", "b  ", "c"}));
  EXPECT_EQ(split_pieces("  a b "), (std::vector<std::string_view>{"  a ", "b "}));
  EXPECT_EQ(split_pieces("   "), (std::vector<std::string_view>{"   "}));
  EXPECT_TRUE(split_pieces("").empty());
  EXPECT_EQ(piece_word("  word \n"), "word");
}

TEST(EchoText, Limits) {
  const std::vector<std::string> none;
  auto cut = apply_limits("a b c", -1, none);
  EXPECT_EQ(cut.length, 5u);
  EXPECT_EQ(cut.finish, MOAT_FINISH_STOP);
  cut = apply_limits("a b c", 2, none);
  EXPECT_EQ(cut.length, 4u);
  EXPECT_EQ(cut.finish, MOAT_FINISH_LENGTH);
  cut = apply_limits("a b c", 0, none);
  EXPECT_EQ(cut.length, 0u);
  EXPECT_EQ(cut.finish, MOAT_FINISH_LENGTH);
  cut = apply_limits("a b c", 3, none);
  EXPECT_EQ(cut.finish, MOAT_FINISH_STOP);
  // Budgets at and above the text's byte count (no split needed) and just below it.
  for (int64_t budget : {4, 5, 6, 8192}) {
    cut = apply_limits("a b c", budget, none);
    EXPECT_EQ(cut.length, 5u) << budget;
    EXPECT_EQ(cut.finish, MOAT_FINISH_STOP) << budget;
  }
  cut = apply_limits("abcde", 5, none);
  EXPECT_EQ(cut.length, 5u);
  EXPECT_EQ(cut.finish, MOAT_FINISH_STOP);
  cut = apply_limits("  ab  ", 1, none);  // one word, six bytes
  EXPECT_EQ(cut.length, 6u);
  EXPECT_EQ(cut.finish, MOAT_FINISH_STOP);
  // The stop that completes first wins, even if another starts earlier.
  cut = apply_limits("xx abcdef yy", -1, {"bcdef", "abc"});
  EXPECT_EQ(cut.length, 3u);
  EXPECT_EQ(cut.finish, MOAT_FINISH_STOP);
  cut = apply_limits("abc", -1, {"zzz"});
  EXPECT_EQ(cut.length, 3u);
}

TEST(EchoText, ChunksRespectUtf8) {
  EXPECT_EQ(chunk_lengths("abcde", 2), (std::vector<size_t>{2, 2, 1}));
  EXPECT_EQ(chunk_lengths("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 1),
            (std::vector<size_t>{2, 3, 4}));
  EXPECT_TRUE(chunk_lengths("", 3).empty());
}

TEST(EchoText, EmbeddingsAreUnitAndStable) {
  const auto a = embed_text("hello", 32);
  const auto b = embed_text("hello", 32);
  const auto c = embed_text("hellp", 32);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  double norm = 0;
  for (float x : a) norm += double(x) * x;
  EXPECT_NEAR(norm, 1.0, 1e-5);
}

// The texts the word counter and scanner are checked on, each handed to `check` with a label
// for the failure message: every byte value at every position of a 19-byte text (two full
// chunks and a tail), between words and spaces; lengths 0-40 (whole blocks of 8 or 16 bytes and
// tails, words running to the end or not); then random texts over spaces, controls, high bytes
// and letters. Stops at the first text `check` fails on.
template <class Check>
void for_each_test_text(Check check) {
  for (int b = 0; b < 256; ++b) {
    for (size_t at = 0; at < 19; ++at) {
      for (const char* fill :
           {"ab cd\tef\ngh ij kl m", "                   ", "abcdefghijklmnopqrs"}) {
        std::string text(fill);
        text[at] = static_cast<char>(b);
        if (!check(text, std::to_string(b).append(" at ").append(std::to_string(at)))) return;
      }
    }
  }
  for (size_t n = 0; n <= 40; ++n) {
    for (const char* fill : {"a", " ", "ab ", " a"}) {
      std::string text;
      while (text.size() < n) text += fill;
      text.resize(n);
      if (!check(text, std::string("[").append(text).append("]"))) return;
    }
  }
  std::mt19937 rng(3);
  const std::string alphabet =
      std::string(" \t\n\v\f\r\x08\x0e\x1f!~\x7f\x80\x89\x8d\xa0\xff", 17) + "ab";
  for (int round = 0; round < 20000; ++round) {
    std::string text(rng() % 70, ' ');
    for (char& c : text) c = alphabet[rng() % alphabet.size()];
    if (!check(text, std::string("random ").append(std::to_string(round)))) return;
  }
}

TEST(EchoText, WordCounterMatchesTheByteByByteOne) {
  for_each_test_text([](const std::string& text, const std::string& label) {
    EXPECT_EQ(count_words(text), count_words_reference(text)) << label;
    return !::testing::Test::HasFailure();
  });
}

// The words for_each_word visits, against a byte loop over is_space.
std::vector<std::pair<size_t, size_t>> words_by_bytes(std::string_view text) {
  std::vector<std::pair<size_t, size_t>> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    const size_t begin = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > begin) words.emplace_back(begin, i);
  }
  return words;
}

std::vector<std::pair<size_t, size_t>> words_by_chunks(std::string_view text) {
  std::vector<std::pair<size_t, size_t>> words;
  for_each_word(text, [&](size_t begin, size_t end) { words.emplace_back(begin, end); });
  return words;
}

TEST(EchoText, WordScannerMatchesTheByteLoop) {
  for_each_test_text([](const std::string& text, const std::string& label) {
    EXPECT_EQ(words_by_chunks(text), words_by_bytes(text)) << label;
    return !::testing::Test::HasFailure();
  });
}

}  // namespace
}  // namespace moat::echo

// The echo vocabulary's flat table against a std::unordered_map doing the same job, and its
// hash.
#include "echo_vocab.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace moat::echo {
namespace {

// Words of every length 0..40 (the hash's short and long paths and their boundaries), with
// bytes that include NUL and high bytes.
std::vector<std::string> sample_words(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> words;
  for (size_t i = 0; i < count; ++i) {
    std::string w(rng() % 41, '\0');
    for (char& c : w) c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : 'a' + rng() % 6);
    words.push_back(std::move(w));
  }
  return words;
}

TEST(EchoVocab, IdsMatchAMapOfFirstSightings) {
  vocabulary vocab;
  std::unordered_map<std::string, int32_t> expected;
  // 60k draws from a small alphabet: many repeats, and the table grows several times.
  for (const std::string& w : sample_words(60000, 7)) {
    const auto [it, added] = expected.emplace(w, static_cast<int32_t>(expected.size()));
    ASSERT_EQ(vocab.id_of(w), it->second) << "word of " << w.size() << " bytes, new: " << added;
  }
  for (const auto& [w, id] : expected) {
    EXPECT_EQ(vocab.read().find(w), id);
    std::string back;
    ASSERT_TRUE(vocab.word_of(id, back));
    EXPECT_EQ(back, w);
  }
  std::string back;
  EXPECT_FALSE(vocab.word_of(static_cast<int32_t>(expected.size()), back));
  EXPECT_FALSE(vocab.word_of(-1, back));
  EXPECT_EQ(vocab.read().find("never seen in the sample"), -1);
}

TEST(EchoVocab, EmptyAndEmbeddedNulWordsAreDistinct) {
  vocabulary vocab;
  const std::string nul1(1, '\0');
  const std::string nul2(2, '\0');
  EXPECT_EQ(vocab.read().find(""), -1);
  EXPECT_EQ(vocab.id_of(""), 0);
  EXPECT_EQ(vocab.id_of(nul1), 1);
  EXPECT_EQ(vocab.id_of(nul2), 2);
  EXPECT_EQ(vocab.id_of("a"), 3);
  EXPECT_EQ(vocab.read().find(""), 0);
  EXPECT_EQ(vocab.read().find(nul2), 2);
}

// Words of up to 8 bytes are matched by their length and the loads the hash takes, without
// their bytes: words of different lengths with equal loads must still get their own ids.
TEST(EchoVocab, ShortWordsWithEqualLoadsAreDistinct) {
  vocabulary vocab;
  const std::vector<std::string> words = {
      "ab",        "abb",         "a",       "aa",     "aaa",
      "abcd",      "abcdabcd",    "abcdbcd", "abcdcd", std::string("abcd\0", 5),
      "abcdabcda", "abcdabcdabcd"};
  for (size_t i = 0; i < words.size(); ++i) {
    ASSERT_EQ(vocab.id_of(words[i]), static_cast<int32_t>(i)) << words[i];
  }
  for (size_t i = 0; i < words.size(); ++i) {
    EXPECT_EQ(vocab.read().find(words[i]), static_cast<int32_t>(i)) << words[i];
    EXPECT_EQ(vocab.id_of(words[i]), static_cast<int32_t>(i)) << words[i];
  }
  EXPECT_EQ(vocab.read().find("abbb"), -1);
  EXPECT_EQ(vocab.read().find("abcdab"), -1);
}

TEST(EchoVocab, HashSeparatesNearWords) {
  // Every word of lengths 0..40 and each of its one-byte changes at every position: no two of
  // these ~10k strings share a 64-bit hash (a hash that ignored a byte or the length would).
  std::set<uint64_t> seen;
  size_t strings = 0;
  for (size_t n = 0; n <= 40; ++n) {
    std::string base(n, 'x');
    ASSERT_TRUE(seen.insert(vocabulary::hash(base)).second) << n;
    ++strings;
    for (size_t at = 0; at < n; ++at) {
      for (char c : {'\0', 'y', '\xff', ' '}) {
        std::string w = base;
        w[at] = c;
        ASSERT_TRUE(seen.insert(vocabulary::hash(w)).second) << n << " " << at;
        ++strings;
      }
    }
  }
  EXPECT_EQ(seen.size(), strings);
}

TEST(EchoVocab, ConcurrentWritersAgreeOnIds) {
  vocabulary vocab;
  const std::vector<std::string> words = sample_words(5000, 11);
  std::vector<std::vector<int32_t>> ids(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < ids.size(); ++t) {
    threads.emplace_back([&, t] {
      for (size_t k = 0; k < words.size(); ++k) {
        // Each thread walks the words in its own order.
        const std::string& w = words[(k * (2 * t + 1)) % words.size()];
        ids[t].push_back(vocab.id_of(w));
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> distinct(words.begin(), words.end());
  for (size_t t = 0; t < ids.size(); ++t) {
    for (size_t k = 0; k < words.size(); ++k) {
      EXPECT_EQ(ids[t][k], vocab.read().find(words[(k * (2 * t + 1)) % words.size()]));
    }
  }
  // Ids are dense: 0 .. distinct-1, one per word.
  std::string back;
  EXPECT_TRUE(vocab.word_of(static_cast<int32_t>(distinct.size()) - 1, back));
  EXPECT_FALSE(vocab.word_of(static_cast<int32_t>(distinct.size()), back));
}

}  // namespace
}  // namespace moat::echo

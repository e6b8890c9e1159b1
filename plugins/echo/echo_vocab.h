// The echo backend's vocabulary: every distinct word seen (in a prompt, an answer or a
// /tokenize call) gets the next id, so ids are small, stable for the backend's life and
// reversible. Thread-safe.
//
//   vocabulary vocab;
//   int32_t id = vocab.id_of("hello");         // 0 the first time, the same id afterwards
//   std::string word;
//   vocab.word_of(id, word);                   // true, word == "hello"
#pragma once

#include <cstdint>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moat::echo {

class vocabulary {
 public:
  // Past this many words, new words get a hashed id in [2^30, 2^31) that is not reversible, so
  // a long-running benchmark cannot grow the map without bound.
  static constexpr size_t max_words = size_t{1} << 20;

  int32_t id_of(std::string_view word);
  bool word_of(int32_t id, std::string& word) const;

 private:
  struct string_hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, int32_t, string_hash, std::equal_to<>> ids_;
  std::vector<std::string> words_;  // id -> word
};

}  // namespace moat::echo

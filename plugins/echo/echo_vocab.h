// The echo backend's vocabulary: every distinct word seen (in a prompt, an answer or a
// /tokenize call) gets the next id, so ids are small, stable for the backend's life and
// reversible. Thread-safe.
//
//   vocabulary vocab;
//   int32_t id = vocab.id_of("hello");         // 0 the first time, the same id afterwards
//   std::string word;
//   vocab.word_of(id, word);                   // true, word == "hello"
//   { auto r = vocab.read(); r.find("hello"); }  // many lookups under one shared lock; -1 if new
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

  // Lookups of known words under one shared lock (an answer's words, instead of a lock round
  // trip each); find() answers -1 for a word not seen yet, which id_of() then adds once the
  // reader is gone (a writer would wait for it).
  class reader {
   public:
    explicit reader(const vocabulary& v) : vocab_(v), lock_(v.mutex_) {}
    int32_t find(std::string_view word) const {
      const auto it = vocab_.ids_.find(word);
      return it == vocab_.ids_.end() ? -1 : it->second;
    }

   private:
    const vocabulary& vocab_;
    std::shared_lock<std::shared_mutex> lock_;
  };
  reader read() const { return reader(*this); }

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

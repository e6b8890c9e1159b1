// The echo backend's vocabulary: every distinct word seen (in a prompt, an answer or a
// /tokenize call) gets the next id, so ids are small, stable for the backend's life and
// reversible. Thread-safe.
//
//   vocabulary vocab;
//   int32_t id = vocab.id_of("hello");         // 0 the first time, the same id afterwards
//   std::string word;
//   vocab.word_of(id, word);                   // true, word == "hello"
//   { auto r = vocab.read(); r.find("hello"); }  // many lookups under one shared lock; -1 if new
//
// A worker looks up every word of every answer here, so the map is a flat open-addressing
// table (one probe into a contiguous array, a 32-bit tag compared before the bytes) over words
// stored back to back, instead of a node-based map of std::string.
#pragma once

#include <cstdint>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
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
    int32_t find(std::string_view word) const { return vocab_.find(word, hash(word)); }

   private:
    const vocabulary& vocab_;
    std::shared_lock<std::shared_mutex> lock_;
  };
  reader read() const { return reader(*this); }

  // The table's hash (exposed for its test): 64 bits from the length and at most 8-byte loads.
  static uint64_t hash(std::string_view word);

 private:
  struct slot {
    uint32_t tag = 0;  // the hash's high half, compared before the bytes
    int32_t id = -1;   // -1: empty
  };
  int32_t find(std::string_view word, uint64_t h) const;  // lock held (either kind)
  void insert(int32_t id, uint64_t h);                    // exclusive lock held; room made
  std::string_view word_at(int32_t id) const {
    const auto [offset, size] = words_[static_cast<size_t>(id)];
    return std::string_view(bytes_).substr(offset, size);
  }

  mutable std::shared_mutex mutex_;
  std::vector<slot> slots_;  // a power of two, at most half full (linear probing)
  std::string bytes_;        // every word, back to back
  std::vector<std::pair<size_t, size_t>> words_;  // id -> [offset, size) in bytes_
};

}  // namespace moat::echo

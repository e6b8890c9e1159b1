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
// stored back to back, instead of a node-based map of std::string. The lookup (hash, probe,
// compare) is inline: a worker runs it once per word of every answer.
#pragma once

#include <cstdint>
#include <cstring>
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
  static inline uint64_t hash(std::string_view word);

 private:
  struct slot {
    uint32_t tag = 0;  // the hash's high half, compared before the bytes
    int32_t id = -1;   // -1: empty
  };
  inline int32_t find(std::string_view word, uint64_t h) const;  // lock held (either kind)
  void insert(int32_t id, uint64_t h);                           // exclusive lock held; room made
  std::string_view word_at(int32_t id) const {
    const auto [offset, size] = words_[static_cast<size_t>(id)];
    return std::string_view(bytes_).substr(offset, size);
  }

  mutable std::shared_mutex mutex_;
  std::vector<slot> slots_;  // a power of two, at most half full (linear probing)
  std::string bytes_;        // every word, back to back
  std::vector<std::pair<size_t, size_t>> words_;  // id -> [offset, size) in bytes_
};

namespace vocab_detail {

inline uint64_t load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint64_t load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
// Bytes 0, n/2 and n-1 of a word of 1..3 bytes: all of its bytes.
inline uint64_t load_short(const char* p, size_t n) {
  return (uint64_t{static_cast<unsigned char>(p[0])} << 16) |
         (uint64_t{static_cast<unsigned char>(p[n / 2])} << 8) |
         static_cast<unsigned char>(p[n - 1]);
}

// One multiply-fold round (the 128-bit product's halves xor-ed): every input bit reaches every
// output bit in one multiplication.
inline uint64_t mix(uint64_t a, uint64_t b) {
  const unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
}

// Equal bytes, for the short words the table holds (a tag match is nearly always a hit):
// overlapping loads instead of a call to memcmp.
inline bool same_bytes(const char* a, const char* b, size_t n) {
  if (n >= 8) {
    return n > 16 ? std::memcmp(a, b, n) == 0
                  : load64(a) == load64(b) && load64(a + n - 8) == load64(b + n - 8);
  }
  if (n >= 4) return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
  return n == 0 || load_short(a, n) == load_short(b, n);
}

constexpr uint64_t k0 = 0xa0761d6478bd642full;
constexpr uint64_t k1 = 0xe7037ed1a0b428dbull;

}  // namespace vocab_detail

inline uint64_t vocabulary::hash(std::string_view word) {
  // Words are mostly 1-8 bytes: two overlapping loads cover them exactly (distinct words of one
  // length give distinct inputs; the length picks the multiplier, so words of different
  // lengths with equal loads part too); longer words take 8 bytes a round and an overlapping
  // last load.
  using namespace vocab_detail;
  const char* p = word.data();
  const size_t n = word.size();
  uint64_t h = k0;
  if (n <= 8) {
    uint64_t v = 0;
    if (n >= 4) {
      v = (load32(p) << 32) | load32(p + n - 4);
    } else if (n > 0) {
      v = load_short(p, n);
    }
    return mix(h ^ v, k1 ^ n);
  }
  size_t i = 0;
  for (; i + 8 < n; i += 8) h = mix(h ^ load64(p + i), k1);
  return mix(h ^ load64(p + n - 8), k1 ^ n);
}

inline int32_t vocabulary::find(std::string_view word, uint64_t h) const {
  if (slots_.empty()) return -1;
  const size_t mask = slots_.size() - 1;
  const auto tag = static_cast<uint32_t>(h >> 32);
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const slot& s = slots_[i];
    if (s.id < 0) return -1;
    if (s.tag != tag) continue;
    const auto [offset, size] = words_[static_cast<size_t>(s.id)];
    if (size == word.size() &&
        vocab_detail::same_bytes(bytes_.data() + offset, word.data(), size)) {
      return s.id;
    }
  }
}

}  // namespace moat::echo

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
// table (one probe into a contiguous array of 16-byte slots) over words stored back to back,
// instead of a node-based map of std::string. A slot holds a short word's bytes as the hash
// loads them, so a word of up to 8 bytes (most) is found without reading the word list or its
// bytes; a longer one is confirmed against its bytes after a tag match. The lookup (hash,
// probe, compare) is inline: a worker runs it once per word of every answer.
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
    int32_t find(std::string_view word) const { return vocab_.find(word, probe_of(word)); }

   private:
    const vocabulary& vocab_;
    std::shared_lock<std::shared_mutex> lock_;
  };
  reader read() const { return reader(*this); }

  // The table's hash (exposed for its test): 64 bits from the length and at most 8-byte loads.
  static uint64_t hash(std::string_view word) { return probe_of(word).hash; }

 private:
  // What a lookup compares. A word of at most 8 bytes is identified exactly by its length and
  // `key` (the loads the hash mixes, which cover every byte), so finding it reads neither the
  // word list nor the bytes; a longer word's tag match is confirmed against its bytes.
  struct probe {
    uint64_t hash = 0;
    uint64_t key = 0;    // words of up to 8 bytes: their bytes as the hash loads them; else 0
    uint32_t check = 0;  // the hash's bits 40..63, then the length (255 for 255 and more)
  };
  struct slot {
    uint64_t key = 0;
    uint32_t check = 0;
    int32_t id = -1;  // -1: empty
  };
  static inline probe probe_of(std::string_view word);
  inline int32_t find(std::string_view word, const probe& q) const;  // lock held (either kind)
  void insert(int32_t id, const probe& q);  // exclusive lock held; room made
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

// Equal bytes of two words longer than 8 bytes (shorter ones compare by their probe's key):
// two overlapping loads up to 16 bytes instead of a call to memcmp.
inline bool same_long_bytes(const char* a, const char* b, size_t n) {
  return n > 16 ? std::memcmp(a, b, n) == 0
                : load64(a) == load64(b) && load64(a + n - 8) == load64(b + n - 8);
}

constexpr uint64_t k0 = 0xa0761d6478bd642full;
constexpr uint64_t k1 = 0xe7037ed1a0b428dbull;

}  // namespace vocab_detail

inline vocabulary::probe vocabulary::probe_of(std::string_view word) {
  // Words are mostly 1-8 bytes: two overlapping loads cover them exactly (distinct words of one
  // length give distinct inputs; the length picks the multiplier, so words of different
  // lengths with equal loads part too); longer words take 8 bytes a round and an overlapping
  // last load.
  using namespace vocab_detail;
  const char* p = word.data();
  const size_t n = word.size();
  probe q;
  if (n <= 8) {
    if (n >= 4) {
      q.key = (load32(p) << 32) | load32(p + n - 4);
    } else if (n > 0) {
      q.key = load_short(p, n);
    }
    q.hash = mix(k0 ^ q.key, k1 ^ n);
  } else {
    uint64_t h = k0;
    size_t i = 0;
    for (; i + 8 < n; i += 8) h = mix(h ^ load64(p + i), k1);
    q.hash = mix(h ^ load64(p + n - 8), k1 ^ n);
  }
  q.check = (static_cast<uint32_t>(q.hash >> 32) & ~uint32_t{0xFF}) |
            static_cast<uint32_t>(n < 255 ? n : 255);
  return q;
}

inline int32_t vocabulary::find(std::string_view word, const probe& q) const {
  if (slots_.empty()) return -1;
  const size_t mask = slots_.size() - 1;
  for (size_t i = q.hash & mask;; i = (i + 1) & mask) {
    const slot& s = slots_[i];
    if (s.id < 0) return -1;
    if (s.check != q.check || s.key != q.key) continue;
    if (word.size() <= 8) return s.id;  // same length and bytes
    const auto [offset, size] = words_[static_cast<size_t>(s.id)];
    if (size == word.size() &&
        vocab_detail::same_long_bytes(bytes_.data() + offset, word.data(), size)) {
      return s.id;
    }
  }
}

}  // namespace moat::echo

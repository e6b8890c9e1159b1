// Word <-> id map, read-mostly: lookups share the lock, only a new word takes it exclusively.
#include "echo_vocab.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "echo_text.h"

namespace moat::echo {
namespace {

constexpr size_t initial_slots = 1024;

uint64_t load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
uint64_t load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// One multiply-fold round (the 128-bit product's halves xor-ed): every input bit reaches every
// output bit in one multiplication.
uint64_t mix(uint64_t a, uint64_t b) {
  const unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
}

// Equal bytes, for the short words the table holds (a tag match is nearly always a hit): two
// overlapping loads instead of a call to memcmp.
bool same_bytes(const char* a, const char* b, size_t n) {
  if (n >= 8) {
    return n > 16 ? std::memcmp(a, b, n) == 0
                  : load64(a) == load64(b) && load64(a + n - 8) == load64(b + n - 8);
  }
  if (n >= 4) return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

constexpr uint64_t k0 = 0xa0761d6478bd642full;
constexpr uint64_t k1 = 0xe7037ed1a0b428dbull;

}  // namespace

uint64_t vocabulary::hash(std::string_view word) {
  // Words are mostly 1-8 bytes: two overlapping loads cover them exactly (distinct words of one
  // length give distinct inputs; the length picks the multiplier, so words of different
  // lengths with equal loads part too); longer words take 8 bytes a round and an overlapping
  // last load.
  const char* p = word.data();
  const size_t n = word.size();
  uint64_t h = k0;
  if (n <= 8) {
    uint64_t v = 0;
    if (n >= 4) {
      v = (load32(p) << 32) | load32(p + n - 4);
    } else if (n > 0) {
      v = (uint64_t{static_cast<unsigned char>(p[0])} << 16) |
          (uint64_t{static_cast<unsigned char>(p[n / 2])} << 8) |
          static_cast<unsigned char>(p[n - 1]);
    }
    return mix(h ^ v, k1 ^ n);
  }
  size_t i = 0;
  for (; i + 8 < n; i += 8) h = mix(h ^ load64(p + i), k1);
  return mix(h ^ load64(p + n - 8), k1 ^ n);
}

int32_t vocabulary::find(std::string_view word, uint64_t h) const {
  if (slots_.empty()) return -1;
  const size_t mask = slots_.size() - 1;
  const auto tag = static_cast<uint32_t>(h >> 32);
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const slot& s = slots_[i];
    if (s.id < 0) return -1;
    if (s.tag != tag) continue;
    const auto [offset, size] = words_[static_cast<size_t>(s.id)];
    if (size == word.size() && same_bytes(bytes_.data() + offset, word.data(), size)) return s.id;
  }
}

void vocabulary::insert(int32_t id, uint64_t h) {
  const size_t mask = slots_.size() - 1;
  size_t i = h & mask;
  while (slots_[i].id >= 0) i = (i + 1) & mask;
  slots_[i] = slot{static_cast<uint32_t>(h >> 32), id};
}

int32_t vocabulary::id_of(std::string_view word) {
  const uint64_t h = hash(word);
  {
    std::shared_lock lock(mutex_);
    if (const int32_t id = find(word, h); id >= 0) return id;
  }
  std::unique_lock lock(mutex_);
  if (const int32_t id = find(word, h); id >= 0) return id;
  if (words_.size() >= max_words) {
    return static_cast<int32_t>((fnv1a(word) & ((uint64_t{1} << 30) - 1)) | (uint64_t{1} << 30));
  }
  if ((words_.size() + 1) * 2 > slots_.size()) {
    // Keep the table at most half full: double it and place every word again.
    std::vector<slot> bigger(std::max(initial_slots, slots_.size() * 2));
    slots_.swap(bigger);
    for (size_t k = 0; k < words_.size(); ++k) {
      const auto id = static_cast<int32_t>(k);
      insert(id, hash(word_at(id)));
    }
  }
  const auto id = static_cast<int32_t>(words_.size());
  words_.emplace_back(bytes_.size(), word.size());
  bytes_.append(word);
  insert(id, h);
  return id;
}

bool vocabulary::word_of(int32_t id, std::string& word) const {
  std::shared_lock lock(mutex_);
  if (id < 0 || static_cast<size_t>(id) >= words_.size()) return false;
  word = word_at(id);
  return true;
}

}  // namespace moat::echo

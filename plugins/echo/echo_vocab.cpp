// Word <-> id map, read-mostly: lookups share the lock, only a new word takes it exclusively.
#include "echo_vocab.h"

#include <algorithm>
#include <mutex>

#include "echo_text.h"

namespace moat::echo {
namespace {

constexpr size_t initial_slots = 1024;

}  // namespace

void vocabulary::insert(int32_t id, const probe& q) {
  const size_t mask = slots_.size() - 1;
  size_t i = q.hash & mask;
  while (slots_[i].id >= 0) i = (i + 1) & mask;
  slots_[i] = slot{q.key, q.check, id};
}

int32_t vocabulary::id_of(std::string_view word) {
  const probe q = probe_of(word);
  {
    std::shared_lock lock(mutex_);
    if (const int32_t id = find(word, q); id >= 0) return id;
  }
  std::unique_lock lock(mutex_);
  if (const int32_t id = find(word, q); id >= 0) return id;
  if (words_.size() >= max_words) {
    return static_cast<int32_t>((fnv1a(word) & ((uint64_t{1} << 30) - 1)) | (uint64_t{1} << 30));
  }
  if ((words_.size() + 1) * 2 > slots_.size()) {
    // Keep the table at most half full: double it and place every word again.
    std::vector<slot> bigger(std::max(initial_slots, slots_.size() * 2));
    slots_.swap(bigger);
    for (size_t k = 0; k < words_.size(); ++k) {
      const auto id = static_cast<int32_t>(k);
      insert(id, probe_of(word_at(id)));
    }
  }
  const auto id = static_cast<int32_t>(words_.size());
  words_.emplace_back(bytes_.size(), word.size());
  bytes_.append(word);
  insert(id, q);
  return id;
}

bool vocabulary::word_of(int32_t id, std::string& word) const {
  std::shared_lock lock(mutex_);
  if (id < 0 || static_cast<size_t>(id) >= words_.size()) return false;
  word = word_at(id);
  return true;
}

}  // namespace moat::echo

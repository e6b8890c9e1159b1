// Word <-> id map, read-mostly: lookups share the lock, only a new word takes it exclusively.
#include "echo_vocab.h"

#include <mutex>

#include "echo_text.h"

namespace moat::echo {

int32_t vocabulary::id_of(std::string_view word) {
  {
    std::shared_lock lock(mutex_);
    if (auto it = ids_.find(word); it != ids_.end()) return it->second;
  }
  std::unique_lock lock(mutex_);
  if (auto it = ids_.find(word); it != ids_.end()) return it->second;
  if (words_.size() >= max_words) {
    return static_cast<int32_t>((fnv1a(word) & ((uint64_t{1} << 30) - 1)) | (uint64_t{1} << 30));
  }
  const auto id = static_cast<int32_t>(words_.size());
  words_.emplace_back(word);
  ids_.emplace(std::string(word), id);
  return id;
}

bool vocabulary::word_of(int32_t id, std::string& word) const {
  std::shared_lock lock(mutex_);
  if (id < 0 || static_cast<size_t>(id) >= words_.size()) return false;
  word = words_[static_cast<size_t>(id)];
  return true;
}

}  // namespace moat::echo

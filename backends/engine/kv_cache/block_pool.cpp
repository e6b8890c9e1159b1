#include "engine/kv_cache/block_pool.h"

#include <algorithm>
#include <stdexcept>

namespace moat::engine::kv_cache {

block_pool::block_pool(int32_t n_blocks, int32_t block_size, bool prefix_caching)
    : block_size_(block_size), caching_(prefix_caching) {
  if (n_blocks < 1 || block_size < 1) throw std::invalid_argument("block_pool: needs at least one block of one position");
  refs_.assign(static_cast<size_t>(n_blocks), 0);
  meta_.resize(static_cast<size_t>(n_blocks));
  for (int32_t b = n_blocks; b-- > 0;) free_.push_back(b);
  if (caching_) tokens_.reset(new int32_t[static_cast<size_t>(n_blocks) * static_cast<size_t>(block_size)]);
}

int32_t block_pool::allocate() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();
    lru_.pop_front();
    forget(b);
  } else {
    return -1;
  }
  refs_[static_cast<size_t>(b)] = 1;
  ++allocations_;
  return b;
}

void block_pool::ref(int32_t block) {
  auto& r = refs_.at(static_cast<size_t>(block));
  if (r == 0) {
    // Only a published block can be revived (a free one has nothing worth sharing).
    auto& m = meta_[static_cast<size_t>(block)];
    if (!m.published) throw std::logic_error("block_pool: ref of a free block");
    lru_.erase(m.lru);
  }
  ++r;
}

void block_pool::unref(int32_t block) {
  auto& r = refs_.at(static_cast<size_t>(block));
  if (r <= 0) throw std::logic_error("block_pool: unref of an unreferenced block");
  if (--r > 0) return;
  auto& m = meta_[static_cast<size_t>(block)];
  if (m.published) {
    m.lru = lru_.insert(lru_.end(), block);
  } else {
    free_.push_back(block);
  }
}

void block_pool::forget(int32_t block) {
  auto& m = meta_[static_cast<size_t>(block)];
  if (!m.published) return;
  auto it = by_hash_.find(m.hash);
  if (it != by_hash_.end() && it->second == block) by_hash_.erase(it);
  m.published = false;
}

int32_t block_pool::lookup(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const {
  if (!caching_ || tokens.size() != static_cast<size_t>(block_size_)) return -1;
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return -1;
  const int32_t b = it->second;
  const auto& m = meta_[static_cast<size_t>(b)];
  // Equal hashes with different content (a 64-bit collision) are a miss, never a wrong block.
  const int32_t* held = tokens_.get() + static_cast<size_t>(b) * block_size_;
  if (m.parent != parent || !std::equal(tokens.begin(), tokens.end(), held)) return -1;
  return b;
}

void block_pool::publish(int32_t block, uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) {
  if (!caching_ || tokens.size() != static_cast<size_t>(block_size_)) return;
  auto& m = meta_.at(static_cast<size_t>(block));
  if (m.published || by_hash_.count(hash)) return;
  m.hash = hash;
  m.parent = parent;
  m.published = true;
  std::copy(tokens.begin(), tokens.end(), tokens_.get() + static_cast<size_t>(block) * block_size_);
  by_hash_.emplace(hash, block);
}

}  // namespace moat::engine::kv_cache

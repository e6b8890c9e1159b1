// block_pool: the host-side bookkeeping of a paged KV cache (the runner owns the K/V storage;
// this decides which block holds what). Fixed-size blocks of block_size positions, reference
// counts so sequences can share blocks, and vLLM's automatic prefix caching: a FULL block can be
// published under its chained content hash (prefix_hash.h); a later sequence whose prompt starts
// with the same tokens (and salt) finds it with lookup() and takes a reference instead of
// computing it again. A block whose last reference goes keeps its content and hash in an LRU of
// evictable cached blocks: a later hit revives it, and allocate() evicts the least recently
// freed one only when no block was never-used or hash-less.
//
//   block_pool pool(/*n_blocks=*/1024, /*block_size=*/16, /*prefix_caching=*/true);
//   int32_t b = pool.allocate();                 // -1: the pool is full (preempt someone)
//   pool.publish(b, hash, parent, tokens);       // b is full: others may now find it
//   if (int32_t hit = pool.lookup(hash, parent, tokens); hit >= 0) pool.ref(hit);
//   pool.unref(b);                               // last reference: cached (evictable) or free
//
// Not thread-safe: the scheduler's engine thread owns it.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

namespace moat::engine::kv_cache {

class block_pool {
 public:
  block_pool(int32_t n_blocks, int32_t block_size, bool prefix_caching);

  // A block with refcount 1 and no hash: a never-used or hash-less block first (lowest id),
  // else the least recently freed cached block (its hash is forgotten). -1 when every block is
  // referenced.
  int32_t allocate();
  // One more reference; a cached block that had none leaves the evictable LRU.
  void ref(int32_t block);
  // One reference fewer; at zero a published block becomes evictable, any other one free.
  void unref(int32_t block);

  // The published block holding `tokens` after the block hashed `parent` (its own hash being
  // `hash`), or -1. Takes no reference. Always -1 with prefix caching off.
  int32_t lookup(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const;
  // Publishes a full, referenced block. A no-op with prefix caching off, or when another block
  // already holds that content (the first stays published; this one is freed when unused).
  void publish(int32_t block, uint64_t hash, uint64_t parent, std::span<const int32_t> tokens);

  int32_t n_blocks() const { return static_cast<int32_t>(refs_.size()); }
  int32_t block_size() const { return block_size_; }
  bool prefix_caching() const { return caching_; }
  int32_t refcount(int32_t block) const { return refs_[static_cast<size_t>(block)]; }
  // Blocks allocate() can hand out now: free plus evictable.
  int32_t available() const { return static_cast<int32_t>(free_.size() + lru_.size()); }
  // Blocks with at least one reference.
  int32_t used() const { return n_blocks() - available(); }
  // Published blocks with no reference (kept for later hits).
  int32_t evictable() const { return static_cast<int32_t>(lru_.size()); }
  // Blocks handed out by allocate() since construction (each is K/V to compute).
  uint64_t allocations() const { return allocations_; }

 private:
  struct cached {
    uint64_t hash = 0, parent = 0;
    bool published = false;
    std::list<int32_t>::iterator lru;  // valid while evictable
  };
  void forget(int32_t block);

  int32_t block_size_;
  bool caching_;
  std::vector<int32_t> refs_;
  std::vector<int32_t> free_;          // a stack, lowest id on top
  std::list<int32_t> lru_;             // evictable, least recently freed first
  std::vector<cached> meta_;
  // [n_blocks][block_size]: a published block's tokens. Left uninitialized (written on publish,
  // read only for published blocks), so a large pool costs memory only as blocks are cached.
  std::unique_ptr<int32_t[]> tokens_;
  std::unordered_map<uint64_t, int32_t> by_hash_;
  uint64_t allocations_ = 0;
};

}  // namespace moat::engine::kv_cache

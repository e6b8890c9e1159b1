// block_pool and prefix_hash: allocation, refcounts, the LRU of evictable cached blocks, the
// hash chain and the salt.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "engine/kv_cache/block_pool.h"
#include "engine/kv_cache/prefix_hash.h"

namespace moat::engine::kv_cache {
namespace {

std::vector<int32_t> tokens(int32_t first, int32_t n) {
  std::vector<int32_t> t;
  for (int32_t i = 0; i < n; ++i) t.push_back(first + i);
  return t;
}

TEST(block_pool, allocates_every_block_once_then_reports_full) {
  block_pool pool(4, 16, true);
  std::set<int32_t> got;
  for (int i = 0; i < 4; ++i) got.insert(pool.allocate());
  EXPECT_EQ(got, (std::set<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(pool.allocate(), -1);
  EXPECT_EQ(pool.used(), 4);
  EXPECT_EQ(pool.available(), 0);
  EXPECT_EQ(pool.allocations(), 4u);
}

TEST(block_pool, refcount_keeps_a_shared_block_until_the_last_reference) {
  block_pool pool(2, 16, false);
  const int32_t b = pool.allocate();
  pool.ref(b);
  EXPECT_EQ(pool.refcount(b), 2);
  pool.unref(b);
  EXPECT_EQ(pool.used(), 1);  // still held once
  pool.unref(b);
  EXPECT_EQ(pool.used(), 0);
  EXPECT_EQ(pool.available(), 2);
  EXPECT_THROW(pool.unref(b), std::logic_error);  // a bookkeeping bug is loud, not silent
  EXPECT_THROW(pool.ref(b), std::logic_error);    // a free (unpublished) block has nothing to share
}

TEST(block_pool, published_blocks_are_found_and_revived_from_the_lru) {
  block_pool pool(3, 4, true);
  const uint64_t root = prefix_root("");
  const auto t0 = tokens(10, 4), t1 = tokens(20, 4);
  const uint64_t h0 = block_hash(root, t0), h1 = block_hash(h0, t1);
  const int32_t a = pool.allocate(), b = pool.allocate();
  pool.publish(a, h0, root, t0);
  pool.publish(b, h1, h0, t1);
  EXPECT_EQ(pool.lookup(h0, root, t0), a);
  EXPECT_EQ(pool.lookup(h1, h0, t1), b);
  pool.unref(a);
  pool.unref(b);
  EXPECT_EQ(pool.evictable(), 2);
  EXPECT_EQ(pool.used(), 0);
  // A hit on an evictable block revives it: it leaves the LRU with one reference.
  ASSERT_EQ(pool.lookup(h0, root, t0), a);
  pool.ref(a);
  EXPECT_EQ(pool.refcount(a), 1);
  EXPECT_EQ(pool.evictable(), 1);
  EXPECT_EQ(pool.used(), 1);
}

TEST(block_pool, never_used_blocks_go_first_then_the_least_recently_freed_cached_one) {
  block_pool pool(3, 2, true);
  const uint64_t root = prefix_root("");
  std::vector<int32_t> ids;
  std::vector<uint64_t> hashes;
  for (int i = 0; i < 3; ++i) {
    const auto t = tokens(100 * i, 2);
    const int32_t b = pool.allocate();
    hashes.push_back(block_hash(root, t));
    pool.publish(b, hashes.back(), root, t);
    ids.push_back(b);
  }
  pool.unref(ids[1]);  // freed first: least recently used
  pool.unref(ids[0]);
  pool.unref(ids[2]);
  const int32_t fresh = pool.allocate();  // no free block left: evicts ids[1]
  EXPECT_EQ(fresh, ids[1]);
  EXPECT_EQ(pool.lookup(hashes[1], root, tokens(100, 2)), -1);  // its hash is forgotten
  EXPECT_EQ(pool.lookup(hashes[0], root, tokens(0, 2)), ids[0]);  // the others stay cached
  EXPECT_EQ(pool.lookup(hashes[2], root, tokens(200, 2)), ids[2]);
  EXPECT_EQ(pool.allocate(), ids[0]);
  EXPECT_EQ(pool.allocate(), ids[2]);
  EXPECT_EQ(pool.allocate(), -1);
}

TEST(block_pool, a_second_block_with_the_same_content_is_not_published_twice) {
  block_pool pool(2, 2, true);
  const uint64_t root = prefix_root("");
  const auto t = tokens(5, 2);
  const uint64_t h = block_hash(root, t);
  const int32_t a = pool.allocate(), b = pool.allocate();
  pool.publish(a, h, root, t);
  pool.publish(b, h, root, t);
  EXPECT_EQ(pool.lookup(h, root, t), a);
  pool.unref(b);  // not published: plainly free
  EXPECT_EQ(pool.evictable(), 0);
  EXPECT_EQ(pool.available(), 1);
}

TEST(block_pool, lookup_checks_content_so_a_hash_collision_is_a_miss) {
  block_pool pool(1, 2, true);
  const uint64_t root = prefix_root("");
  const int32_t a = pool.allocate();
  pool.publish(a, 42, root, tokens(1, 2));
  EXPECT_EQ(pool.lookup(42, root, tokens(1, 2)), a);
  EXPECT_EQ(pool.lookup(42, root, tokens(7, 2)), -1);      // same hash, other tokens
  EXPECT_EQ(pool.lookup(42, root + 1, tokens(1, 2)), -1);  // same hash, other parent
  EXPECT_EQ(pool.lookup(42, root, tokens(1, 1)), -1);      // not a full block
}

TEST(block_pool, prefix_caching_off_publishes_nothing) {
  block_pool pool(1, 2, false);
  const uint64_t root = prefix_root("");
  const int32_t a = pool.allocate();
  pool.publish(a, block_hash(root, tokens(1, 2)), root, tokens(1, 2));
  EXPECT_EQ(pool.lookup(block_hash(root, tokens(1, 2)), root, tokens(1, 2)), -1);
  pool.unref(a);
  EXPECT_EQ(pool.evictable(), 0);
}

TEST(prefix_hash, chains_depend_on_every_earlier_token_and_on_the_salt) {
  const auto t0 = tokens(1, 16), t1 = tokens(50, 16);
  auto t0_changed = t0;
  t0_changed[15] = 999;
  const uint64_t r = prefix_root("");
  EXPECT_EQ(block_hash(block_hash(r, t0), t1), block_hash(block_hash(r, t0), t1));  // deterministic
  EXPECT_NE(block_hash(block_hash(r, t0), t1), block_hash(block_hash(r, t0_changed), t1));
  EXPECT_NE(block_hash(r, t0), block_hash(r, t1));
  EXPECT_NE(prefix_root(""), prefix_root("team-a"));
  EXPECT_NE(prefix_root("team-a"), prefix_root("team-b"));
  EXPECT_NE(block_hash(prefix_root("team-a"), t0), block_hash(prefix_root("team-b"), t0));
  // Order matters inside a block too.
  auto swapped = t0;
  std::swap(swapped[0], swapped[1]);
  EXPECT_NE(block_hash(r, t0), block_hash(r, swapped));
}

}  // namespace
}  // namespace moat::engine::kv_cache

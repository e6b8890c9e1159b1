// kv_block_manager (backends/cuda/kv_blocks.h): block tables, all-or-nothing reservation,
// preemption by swapping to the host pool and back, and, under random operations, that no
// block is ever owned twice or lost.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "kv_blocks.h"

namespace moat::cuda {
namespace {

TEST(KvBlocks, ReserveGrowsTheTableAllOrNothing) {
  kv_block_manager m(4, 8, 16);
  EXPECT_TRUE(m.reserve(1, 17));  // 2 blocks
  EXPECT_EQ(m.table(1).size(), 2u);
  EXPECT_TRUE(m.reserve(1, 32));  // still 2
  EXPECT_EQ(m.table(1).size(), 2u);
  EXPECT_EQ(m.free_device_blocks(), 2);
  EXPECT_FALSE(m.reserve(2, 48));  // needs 3 of 2: nothing taken, not admitted
  EXPECT_EQ(m.free_device_blocks(), 2);
  EXPECT_FALSE(m.resident(2));
  EXPECT_TRUE(m.reserve(2, 32));
  EXPECT_EQ(m.free_device_blocks(), 0);
  std::set<int32_t> all(m.table(1).begin(), m.table(1).end());
  all.insert(m.table(2).begin(), m.table(2).end());
  EXPECT_EQ(all, (std::set<int32_t>{0, 1, 2, 3}));
  m.release(1);
  EXPECT_EQ(m.free_device_blocks(), 2);
  m.release(99);  // unknown: ignored
}

TEST(KvBlocks, PreemptBySwappingTheNewestOutAndBackIn) {
  kv_block_manager m(4, 4, 16);
  ASSERT_TRUE(m.reserve(10, 32));
  ASSERT_TRUE(m.reserve(11, 32));
  EXPECT_FALSE(m.reserve(10, 48));  // full
  auto victim = m.pick_victim(10);
  ASSERT_TRUE(victim.has_value());
  EXPECT_EQ(*victim, 11u);  // the most recently admitted
  const auto before = m.table(11);
  auto out = m.swap_out(11);
  ASSERT_TRUE(out.has_value());
  ASSERT_EQ(out->size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ((*out)[i].from, before[i]);
  EXPECT_TRUE(m.swapped(11));
  EXPECT_TRUE(m.table(11).empty());
  EXPECT_FALSE(m.reserve(11, 48));  // swapped out: cannot grow
  EXPECT_TRUE(m.reserve(10, 48));
  EXPECT_FALSE(m.swap_in(11).has_value());  // 1 free device block, needs 2
  m.release(10);
  auto in = m.swap_in(11);
  ASSERT_TRUE(in.has_value());
  ASSERT_EQ(in->size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ((*in)[i].from, (*out)[i].to);  // host block i comes back as logical block i
    EXPECT_EQ((*in)[i].to, m.table(11)[i]);
  }
  EXPECT_EQ(m.free_host_blocks(), 4);
  EXPECT_FALSE(m.pick_victim(11).has_value());
}

TEST(KvBlocks, HostPoolFullRefusesSwapOut) {
  kv_block_manager m(4, 1, 16);
  ASSERT_TRUE(m.reserve(1, 64));
  EXPECT_FALSE(m.swap_out(1).has_value());
  EXPECT_TRUE(m.resident(1));
  EXPECT_EQ(m.free_host_blocks(), 1);
}

TEST(KvBlocks, RandomOperationsNeverLoseOrShareABlock) {
  const int32_t dev_blocks = 64, host_blocks = 48;
  kv_block_manager m(dev_blocks, host_blocks, 16);
  std::mt19937 rng(1);
  std::map<uint64_t, int32_t> positions;  // what each admitted sequence asked for
  for (int step = 0; step < 5000; ++step) {
    const uint64_t seq = rng() % 12;
    switch (rng() % 5) {
      case 0:
      case 1: {
        const int32_t n = positions[seq] + static_cast<int32_t>(rng() % 40);
        if (m.reserve(seq, n)) positions[seq] = n;
        break;
      }
      case 2: m.release(seq), positions.erase(seq); break;
      case 3: (void)m.swap_out(seq); break;
      case 4: (void)m.swap_in(seq); break;
    }
    std::set<int32_t> dev;
    int32_t dev_count = 0;
    for (uint64_t s = 0; s < 12; ++s) {
      if (m.resident(s)) {
        const auto& t = m.table(s);
        ASSERT_GE(int64_t(t.size()) * 16, positions.count(s) ? positions[s] : 0) << "seq " << s;
        for (int32_t b : t) ASSERT_TRUE(dev.insert(b).second) << "device block " << b << " owned twice";
        dev_count += int32_t(t.size());
      }
    }
    ASSERT_EQ(dev_count + m.free_device_blocks(), dev_blocks) << "a device block was lost at step " << step;
    ASSERT_LE(m.free_host_blocks(), host_blocks);
  }
}

}  // namespace
}  // namespace moat::cuda

// KV swap copies (backends/cuda/kv_blocks.h, used by kv_swap.h): the block copies
// kv_block_manager lists are coalesced into runs that copy exactly the same bytes, and the
// pinned pool is sized from options.host_kv_mb, and the engine's swap moves round-trip through the
// host pool as the cuda runner copies them. memcpy stands in for the DMA.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <random>

#include "kv_blocks.h"

namespace moat::cuda {
namespace {

TEST(KvSwap, ConsecutiveBlocksBecomeOneRun) {
  EXPECT_EQ(coalesce_copies({{4, 10}, {5, 11}, {6, 12}}), (std::vector<copy_run>{{4, 10, 3}}));
  // Unsorted input, a gap on the source side, a gap on the destination side.
  EXPECT_EQ(coalesce_copies({{9, 3}, {1, 0}, {2, 1}, {3, 5}, {8, 2}}),
            (std::vector<copy_run>{{1, 0, 2}, {3, 5, 1}, {8, 2, 2}}));
  EXPECT_TRUE(coalesce_copies({}).empty());
}

// Applies runs with memcpy over host "pools" of block_bytes-sized blocks.
void apply(const std::vector<copy_run>& runs, const std::vector<uint8_t>& src, std::vector<uint8_t>& dst, size_t bb) {
  for (const auto& r : runs) std::memcpy(dst.data() + r.to * bb, src.data() + r.from * bb, r.count * bb);
}

TEST(KvSwap, RunsMoveTheSameBytesAsTheBlockCopies) {
  // A manager under pressure: sequences interleave their blocks, one is swapped out and back.
  const size_t bb = 24;
  kv_block_manager m(/*device_blocks=*/32, /*host_blocks=*/32, /*block_size=*/16);
  for (uint64_t seq = 1; seq <= 3; ++seq) ASSERT_TRUE(m.reserve(seq, 16 * 3));
  for (uint64_t seq = 1; seq <= 3; ++seq) ASSERT_TRUE(m.reserve(seq, 16 * 6));  // grow: interleaved blocks
  std::vector<uint8_t> device(32 * bb), host(32 * bb, 0), via_blocks(32 * bb, 0);
  std::iota(device.begin(), device.end(), uint8_t{0});
  const auto copies = m.swap_out(2);
  ASSERT_TRUE(copies.has_value());
  ASSERT_EQ(copies->size(), 6u);
  for (const auto& c : *copies) std::memcpy(via_blocks.data() + c.to * bb, device.data() + c.from * bb, bb);
  const auto runs = coalesce_copies(*copies);
  EXPECT_LT(runs.size(), copies->size()) << "nothing was coalesced";
  apply(runs, device, host, bb);
  EXPECT_EQ(host, via_blocks);

  // And back into other device blocks.
  std::vector<uint8_t> back(32 * bb, 0), back_blocks(32 * bb, 0);
  const auto in = m.swap_in(2);
  ASSERT_TRUE(in.has_value());
  for (const auto& c : *in) std::memcpy(back_blocks.data() + c.to * bb, host.data() + c.from * bb, bb);
  apply(coalesce_copies(*in), host, back, bb);
  EXPECT_EQ(back, back_blocks);
}

// The engine's swap moves (engine/model_runner.h) as the cuda runner copies them: per layer, K
// and V, the device pools and the host pool indexed by block. memcpy stands in for the DMA; the
// device blocks are poisoned between the swaps (the scheduler reuses them) and the sequence
// comes back into other blocks.
TEST(KvSwap, EngineMovesRoundTripThroughTheHostPool) {
  const int32_t layers = 3, device_blocks = 12, host_blocks = 8;
  const size_t bb = 40;
  std::vector<std::vector<uint8_t>> dev_k(layers, std::vector<uint8_t>(device_blocks * bb)), dev_v = dev_k;
  std::vector<std::vector<uint8_t>> host_k(layers, std::vector<uint8_t>(host_blocks * bb, 0)), host_v = host_k;
  std::mt19937 rng(7);
  for (int32_t l = 0; l < layers; ++l)
    for (size_t i = 0; i < dev_k[l].size(); ++i) {
      dev_k[l][i] = static_cast<uint8_t>(rng());
      dev_v[l][i] = static_cast<uint8_t>(rng());
    }
  const std::vector<int32_t> table = {9, 2, 3, 4, 11};  // a sequence's block table
  auto block = [&](const std::vector<uint8_t>& pool, int32_t b) {
    return std::vector<uint8_t>(pool.begin() + b * bb, pool.begin() + (b + 1) * bb);
  };
  std::vector<std::vector<uint8_t>> want;  // [layer][K, V][table index] flattened
  for (int32_t l = 0; l < layers; ++l)
    for (int32_t b : table) {
      want.push_back(block(dev_k[l], b));
      want.push_back(block(dev_v[l], b));
    }
  std::vector<engine::block_move> out;
  for (size_t i = 0; i < table.size(); ++i) out.push_back({.device = table[i], .host = static_cast<int32_t>(i) + 2});
  const auto runs_out = swap_runs(out, /*to_host=*/true);
  EXPECT_EQ(runs_out, (std::vector<copy_run>{{2, 3, 3}, {9, 2, 1}, {11, 6, 1}}));
  for (int32_t l = 0; l < layers; ++l) {
    apply(runs_out, dev_k[l], host_k[l], bb);
    apply(runs_out, dev_v[l], host_v[l], bb);
    std::fill(dev_k[l].begin(), dev_k[l].end(), uint8_t{0xAB});
    std::fill(dev_v[l].begin(), dev_v[l].end(), uint8_t{0xAB});
  }
  const std::vector<int32_t> back_table = {0, 1, 5, 6, 7};
  std::vector<engine::block_move> in;
  for (size_t i = 0; i < table.size(); ++i) in.push_back({.device = back_table[i], .host = static_cast<int32_t>(i) + 2});
  const auto runs_in = swap_runs(in, /*to_host=*/false);
  EXPECT_EQ(runs_in, (std::vector<copy_run>{{2, 0, 2}, {4, 5, 3}}));
  for (int32_t l = 0; l < layers; ++l) {
    apply(runs_in, host_k[l], dev_k[l], bb);
    apply(runs_in, host_v[l], dev_v[l], bb);
  }
  size_t n = 0;
  for (int32_t l = 0; l < layers; ++l)
    for (int32_t b : back_table) {
      EXPECT_EQ(block(dev_k[l], b), want[n++]) << "layer " << l << " block " << b;
      EXPECT_EQ(block(dev_v[l], b), want[n++]) << "layer " << l << " block " << b;
    }
  EXPECT_TRUE(swap_runs({}, true).empty());
}

TEST(KvSwap, PoolSizeFromHostKvMb) {
  // Llama-3-8B-like: 32 layers, blocks of 16 positions x 8 kv heads x 128 dims x 4 bytes.
  const size_t bb = 16 * 8 * 128 * 4;
  EXPECT_EQ(host_kv_blocks_for(4096, 32, bb), 1024);  // 4 GiB / (32 * 2 * 64 KiB)
  EXPECT_EQ(host_kv_blocks_for(0, 32, bb), 0);
  EXPECT_EQ(host_kv_blocks_for(1, 32, bb), 0);  // less than one block
}

}  // namespace
}  // namespace moat::cuda

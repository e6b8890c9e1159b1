// Pre-quantized engine tensors go to the kernels' formats as stored (cuda_weights.h): which
// dtypes and requested formats take the direct path, and the lossless GGUF Q4_0 → int4 (groups
// of 32) repack read back through the kernels' scalar reference. Host code: runs everywhere
// nvcc builds the runtime, with or without a device.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "cuda_weights.h"
#include "kernels/reference/reference.h"

namespace moat::cuda {
namespace {

// A GGUF tensor of `type` (Q4_0: 18-byte blocks, Q8_0: 34) with random f16 scales in
// [-max_scale, max_scale] and random payload bytes.
engine::tensor make_blocks(engine::dtype type, int64_t rows, int64_t cols,
                           std::vector<uint8_t>& bytes, uint32_t seed, float max_scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> scale(-max_scale, max_scale);
  const int64_t blocks = cols / 32, block_bytes = type == engine::dtype::q4_0 ? 18 : 34;
  bytes.assign(static_cast<size_t>(rows * blocks * block_bytes), 0);
  for (int64_t b = 0; b < rows * blocks; ++b) {
    uint8_t* blk = bytes.data() + b * block_bytes;
    const uint16_t h = engine::f32_to_f16(scale(rng));
    blk[0] = static_cast<uint8_t>(h & 0xff);
    blk[1] = static_cast<uint8_t>(h >> 8);
    for (int64_t j = 2; j < block_bytes; ++j) blk[j] = static_cast<uint8_t>(rng() & 0xff);
  }
  engine::tensor t;
  t.name = "blk.0.attn_q.weight";
  t.type = type;
  t.shape = {rows, cols};
  t.data = bytes.data();
  return t;
}

engine::tensor make_q4_0(int64_t rows, int64_t cols, std::vector<uint8_t>& bytes, uint32_t seed) {
  return make_blocks(engine::dtype::q4_0, rows, cols, bytes, seed, 0.2f);
}

TEST(CudaWeightsDirect, Q4_0RepackMatchesTheDequantizedRows) {
  std::vector<uint8_t> bytes;
  const int64_t rows = 5, cols = 96;  // 3 blocks per row
  const engine::tensor t = make_q4_0(rows, cols, bytes, 7);
  std::vector<uint8_t> q;
  std::vector<float> s;
  repack_q4_0_as_int4(t, q, s);
  ASSERT_EQ(q.size(), static_cast<size_t>(rows * cols / 2));
  ASSERT_EQ(s.size(), static_cast<size_t>(rows * cols / 32));

  kernels::gemv_weights w;
  w.format = kernels::weight_format::int4;
  w.rows = rows;
  w.cols = cols;
  w.group = 32;
  w.data = q.data();
  w.scales = s.data();
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    t.row_to_f32(r, row.data());
    for (int64_t c = 0; c < cols; ++c)
      ASSERT_EQ(kernels::reference::weight_at(w, r, c), row[static_cast<size_t>(c)]) << r << "," << c;
  }
}

TEST(CudaWeightsDirect, Q8_0RepackMatchesTheDequantizedRows) {
  std::vector<uint8_t> bytes;
  const int64_t rows = 7, cols = 128;  // 4 blocks per row
  const engine::tensor t = make_blocks(engine::dtype::q8_0, rows, cols, bytes, 11, 0.05f);
  std::vector<int8_t> q;
  std::vector<float> s;
  repack_q8_0_as_int8(t, q, s);
  ASSERT_EQ(q.size(), static_cast<size_t>(rows * cols));
  ASSERT_EQ(s.size(), static_cast<size_t>(rows * cols / 32));

  kernels::gemv_weights w;
  w.format = kernels::weight_format::int8;
  w.rows = rows;
  w.cols = cols;
  w.int8_group = 32;
  w.data = q.data();
  w.scales = s.data();
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    t.row_to_f32(r, row.data());
    for (int64_t c = 0; c < cols; ++c)
      ASSERT_EQ(kernels::reference::weight_at(w, r, c), row[static_cast<size_t>(c)])
          << r << "," << c;
  }
}

TEST(CudaWeightsDirect, OnlyKernelFormatsGoUpAsStored) {
  std::vector<uint8_t> bytes;
  engine::tensor q4 = make_q4_0(2, 64, bytes, 1);
  kernels::weight_format f{};
  EXPECT_TRUE(direct_format(q4, "", 64, &f));
  EXPECT_EQ(f, kernels::weight_format::int4);
  EXPECT_TRUE(direct_format(q4, "int4", 128, &f));  // Q4_0's own groups of 32 beat requantizing
  EXPECT_FALSE(direct_format(q4, "nf4", 64, &f));
  EXPECT_FALSE(direct_format(q4, "bf16", 64, &f));

  const std::vector<float> scales(4, 0.5f);
  engine::tensor i8 = q4;
  i8.type = engine::dtype::int8;
  i8.scales = scales.data();
  EXPECT_TRUE(direct_format(i8, "", 64, &f));
  EXPECT_EQ(f, kernels::weight_format::int8);
  EXPECT_TRUE(direct_format(i8, "int8", 64, &f));
  EXPECT_FALSE(direct_format(i8, "int4", 64, &f));

  engine::tensor i4 = i8;
  i4.type = engine::dtype::int4;
  EXPECT_TRUE(direct_format(i4, "int4", 64, &f));
  EXPECT_FALSE(direct_format(i4, "int4", 128, &f));  // another group size: requantized

  engine::tensor nf = i8;
  nf.type = engine::dtype::nf4;
  EXPECT_TRUE(direct_format(nf, "", 64, &f));
  EXPECT_EQ(f, kernels::weight_format::nf4);
  nf.scales = nullptr;
  EXPECT_FALSE(direct_format(nf, "", 64, &f));

  engine::tensor q8 = q4;
  q8.type = engine::dtype::q8_0;  // int8 with a scale per 32
  EXPECT_TRUE(direct_format(q8, "", 64, &f));
  EXPECT_EQ(f, kernels::weight_format::int8);
  EXPECT_TRUE(direct_format(q8, "int8", 64, &f));
  EXPECT_FALSE(direct_format(q8, "int4", 64, &f));
  q8.shape = {2, 48};  // not whole blocks: no direct path
  EXPECT_FALSE(direct_format(q8, "", 64, &f));
  engine::tensor f32 = q4;
  f32.type = engine::dtype::f32;
  EXPECT_FALSE(direct_format(f32, "", 64, &f));
}

}  // namespace
}  // namespace moat::cuda

// f16_matmul_rows against matmul_rows (the row_to_f32 + dot path) on the same F16 tensor: the
// outputs must be the same bits, for row lengths that are and are not multiples of 8, every
// token tile remainder, row ranges that split the weight-row tiles, and subnormal weights.
#include "cpu/f16_matmul.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/kernels.h"
#include "engine/tensor.h"

namespace moat::cpu {
namespace {

struct f16_case {
  std::vector<uint16_t> w;
  std::vector<float> x;
  engine::tensor t;
};

f16_case make_case(int64_t rows, int64_t cols, int64_t tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  f16_case c;
  c.w.resize(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < c.w.size(); ++i) {
    // Every 7th weight is tiny, so some round to f16 subnormals (or zero, with either sign).
    const float v = i % 7 == 0 ? nd(rng) * 1e-6f : nd(rng) * 0.1f;
    c.w[i] = engine::f32_to_f16(v);
  }
  c.x.resize(static_cast<size_t>(tokens * cols));
  for (float& v : c.x) v = nd(rng);
  c.t.name = "w";
  c.t.type = engine::dtype::f16;
  c.t.shape = {rows, cols};
  c.t.data = c.w.data();
  return c;
}

TEST(f16_matmul, same_bits_as_matmul_rows) {
  if (!f16_matmul_available()) GTEST_SKIP() << "this CPU has no AVX2 + F16C";
  uint32_t seed = 1;
  int subnormals = 0;
  for (const int64_t cols : {1, 7, 8, 13, 64, 128, 130}) {
    for (const int64_t tokens : {1, 2, 3, 4, 5, 8, 11}) {
      const int64_t rows = 37;  // not a multiple of any weight-row tile
      f16_case c = make_case(rows, cols, tokens, seed++);
      for (uint16_t h : c.w) subnormals += (h & 0x7c00) == 0 && (h & 0x3ff) != 0;
      const int64_t stride = rows + 3;
      std::vector<float> want(static_cast<size_t>(tokens * stride), -1.0f);
      std::vector<float> got(want.size(), -1.0f);
      std::vector<float> scratch(static_cast<size_t>(cols));
      // Two ranges, as two workers would take them: the split falls inside a tile of 8.
      for (const auto& [b, e] : {std::pair<int64_t, int64_t>{0, 13}, {13, rows}}) {
        matmul_rows(c.t, c.x.data(), tokens, want.data(), stride, b, e, scratch.data());
        f16_matmul_rows(c.w.data(), cols, c.x.data(), tokens, got.data(), stride, b, e);
      }
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i]))
            << "cols " << cols << " tokens " << tokens << " index " << i << ": " << got[i] << " vs "
            << want[i];
      }
    }
  }
  EXPECT_GT(subnormals, 0) << "the cases should include f16 subnormal weights";
}

// The padding columns of y (stride > rows) and rows outside [o_begin, o_end) are not written.
TEST(f16_matmul, writes_only_its_rows) {
  if (!f16_matmul_available()) GTEST_SKIP() << "this CPU has no AVX2 + F16C";
  f16_case c = make_case(20, 16, 3, 99);
  std::vector<float> y(3 * 24, 42.0f);
  f16_matmul_rows(c.w.data(), 16, c.x.data(), 3, y.data(), 24, 5, 17);
  for (int64_t t = 0; t < 3; ++t) {
    for (int64_t o = 0; o < 24; ++o) {
      const float v = y[static_cast<size_t>(t * 24 + o)];
      if (o >= 5 && o < 17) {
        EXPECT_NE(v, 42.0f) << t << "," << o;
      } else {
        EXPECT_EQ(v, 42.0f) << t << "," << o;
      }
    }
  }
}

}  // namespace
}  // namespace moat::cpu

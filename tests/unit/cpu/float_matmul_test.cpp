// f16_matmul_rows and f32_matmul_rows against matmul_rows (row_to_f32 + the dot_lanes order) on
// the same tensor: the outputs must be the same bits, for row lengths that are and are not
// multiples of 8, every token tile remainder, row ranges that split the weight-row tiles, and
// (f16) subnormal weights.
#include "cpu/float_matmul.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/kernels.h"
#include "engine/tensor.h"

namespace moat::cpu {
namespace {

struct weights_case {
  std::vector<uint16_t> w16;
  std::vector<float> w32, x;
  engine::tensor t;
  int subnormals = 0;
};

weights_case make_case(engine::dtype type, int64_t rows, int64_t cols, int64_t tokens,
                       uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  weights_case c;
  const size_t n = static_cast<size_t>(rows * cols);
  // Every 7th weight is tiny: some round to f16 subnormals (or to zero, with either sign).
  for (size_t i = 0; i < n; ++i) c.w32.push_back(i % 7 == 0 ? nd(rng) * 1e-6f : nd(rng) * 0.1f);
  for (float v : c.w32) c.w16.push_back(engine::f32_to_f16(v));
  for (uint16_t h : c.w16) c.subnormals += (h & 0x7c00) == 0 && (h & 0x3ff) != 0;
  c.x.resize(static_cast<size_t>(tokens * cols));
  for (float& v : c.x) v = nd(rng);
  c.t.name = std::string(1, 'w');  // (not = "w": GCC 12 -O3 reports a false -Wrestrict)
  c.t.type = type;
  c.t.shape = {rows, cols};
  c.t.data = type == engine::dtype::f16 ? static_cast<const void*>(c.w16.data()) : c.w32.data();
  return c;
}

void run_fast(const weights_case& c, float_isa isa, int64_t tokens, float* y, int64_t stride,
              int64_t b, int64_t e) {
  const int64_t cols = c.t.cols();
  if (c.t.type == engine::dtype::f16) {
    f16_matmul_rows(c.w16.data(), cols, c.x.data(), tokens, y, stride, b, e, isa);
  } else {
    f32_matmul_rows(c.w32.data(), cols, c.x.data(), tokens, y, stride, b, e, isa);
  }
}

// Every kernel this CPU can run (AVX2, and AVX-512 where present).
std::vector<float_isa> isas() {
  std::vector<float_isa> out;
  if (float_matmul_isa() != float_isa::none) out.push_back(float_isa::avx2);
  if (float_matmul_isa() == float_isa::avx512) out.push_back(float_isa::avx512);
  return out;
}

class float_matmul : public ::testing::TestWithParam<engine::dtype> {};

TEST_P(float_matmul, same_bits_as_matmul_rows) {
  if (!float_matmul_available()) GTEST_SKIP() << "this CPU has no AVX2 + F16C";
  if (float_matmul_isa() != float_isa::avx512) std::printf("no AVX-512 here: AVX2 kernel only\n");
  uint32_t seed = 1;
  int subnormals = 0;
  for (const float_isa isa : isas()) {
    for (const int64_t cols : {1, 7, 8, 13, 64, 128, 130}) {
      for (const int64_t tokens : {1, 2, 3, 4, 5, 8, 11}) {
        const int64_t rows = 53;  // not a multiple of any weight-row tile (16, 8, 2)
        const weights_case c = make_case(GetParam(), rows, cols, tokens, seed++);
        subnormals += c.subnormals;
        const int64_t stride = rows + 3;
        std::vector<float> want(static_cast<size_t>(tokens * stride), -1.0f);
        std::vector<float> got(want.size(), -1.0f);
        std::vector<float> scratch(static_cast<size_t>(cols));
        // Two ranges, as two workers would take them: the split falls inside a tile.
        for (const auto& [b, e] : {std::pair<int64_t, int64_t>{0, 13}, {13, rows}}) {
          matmul_rows(c.t, c.x.data(), tokens, want.data(), stride, b, e, scratch.data());
          run_fast(c, isa, tokens, got.data(), stride, b, e);
        }
        for (size_t i = 0; i < want.size(); ++i) {
          ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i]))
              << "isa " << static_cast<int>(isa) << " cols " << cols << " tokens " << tokens
              << " index " << i << ": " << got[i] << " vs " << want[i];
        }
      }
    }
  }
  EXPECT_GT(subnormals, 0) << "the cases should include f16 subnormal weights";
}

// The padding columns of y (stride > rows) and rows outside [o_begin, o_end) are not written.
TEST_P(float_matmul, writes_only_its_rows) {
  if (!float_matmul_available()) GTEST_SKIP() << "this CPU has no AVX2 + F16C";
  const weights_case c = make_case(GetParam(), 40, 16, 3, 99);
  for (const float_isa isa : isas()) {
    std::vector<float> y(3 * 44, 42.0f);
    run_fast(c, isa, 3, y.data(), 44, 5, 37);
    for (int64_t t = 0; t < 3; ++t) {
      for (int64_t o = 0; o < 44; ++o) {
        const float v = y[static_cast<size_t>(t * 44 + o)];
        if (o >= 5 && o < 37) {
          EXPECT_NE(v, 42.0f) << t << "," << o;
        } else {
          EXPECT_EQ(v, 42.0f) << t << "," << o;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(types, float_matmul,
                         ::testing::Values(engine::dtype::f16, engine::dtype::f32),
                         [](const auto& info) {
                           return std::string(engine::dtype_name(info.param));
                         });

}  // namespace
}  // namespace moat::cpu

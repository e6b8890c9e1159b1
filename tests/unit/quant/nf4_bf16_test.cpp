// The bf16 NF4 tiles (kernels_nf4_bf16.cpp) on random shapes: row counts that leave single rows,
// batches that leave every remainder of the 6-row activation tile, row lengths of 1, 3 and 33
// blocks of 64. Each output is held to two references:
//  - the same arithmetic done here in double: weights and activations rounded to bf16 (nearest
//    even), exact products, so only the f32 summation order may differ (1e-5 of sum |w||x|);
//  - the f32 product of the dequantized weights, within the bound bf16 rounding allows: each
//    operand carries a relative error of at most 2^-9, so |error| <= ~2 * 2^-9 * sum |w||x|;
//    the test allows 2 * 2^-8 (twice that) plus the f32 summation term.
// A CPU without AVX512_BF16 skips with a message (its tables have no bf16 tiles).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bf16_round.h"
#include "cpu/quant/matmul.h"
#include "random_values.h"

namespace moat::cpu::quant {
namespace {

namespace q = engine::quant;

using quant_test::random_values;
using quant_test::to_bf16;

bool cpu_has_bf16() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

class nf4_bf16 : public testing::TestWithParam<isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) GTEST_SKIP() << "this CPU (or build) has no " << isa_name(GetParam()) << " path";
    // Without the AMX tiles, which matmul_rows would prefer (nf4_amx_test.cpp tests those).
    table_ = *kernels_for(GetParam());
    table_.gemm_nf4_amx = nullptr;
    k_ = &table_;
    if (k_->gemm_nf4_bf16 == nullptr) {
      GTEST_SKIP() << "no bf16 NF4 tiles here (CPU avx512_bf16: " << (cpu_has_bf16() ? "yes" : "no") << ")";
    }
  }
  dot_kernels table_{};
  const dot_kernels* k_ = nullptr;
};

TEST(nf4_bf16_dispatch, avx512_tables_have_bf16_tiles_exactly_where_the_cpu_has_avx512_bf16) {
  for (isa i : {isa::avx512, isa::avx512_vnni}) {
    if (!isa_supported(i)) continue;
    EXPECT_EQ(kernels_for(i)->gemm_nf4_bf16 != nullptr, cpu_has_bf16()) << isa_name(i);
  }
  EXPECT_EQ(kernels_for(isa::scalar)->gemm_nf4_bf16, nullptr);
}

TEST_P(nf4_bf16, matches_bf16_arithmetic_and_stays_within_the_bf16_bound_of_f32) {
  for (size_t cols : {64u, 192u, 2112u}) {
    for (size_t rows : {1u, 5u, 11u}) {
      const std::vector<float> w = random_values(rows * cols, 70 + static_cast<uint32_t>(cols + rows));
      const quantized_matrix m = quantize_matrix(weight_format::nf4, w.data(), rows, cols);
      std::vector<float> wd(rows * cols);
      q::dequantize_nf4(m.data.data(), m.scales.data(), wd.size(), q::nf4_blocksize, wd.data());
      for (size_t batch : {1u, 7u, 8u, 13u, 32u}) {
        SCOPED_TRACE("cols " + std::to_string(cols) + " rows " + std::to_string(rows) + " batch " +
                     std::to_string(batch));
        const std::vector<float> x = random_values(batch * cols, 90 + static_cast<uint32_t>(cols + batch));
        std::vector<float> y(batch * rows), y_split(batch * rows);
        k_->gemm_nf4_bf16(m.data.data(), m.scales.data(), cols, x.data(), batch, y.data(), rows, 0, rows);
        const size_t half = rows / 2;  // rows split as threads would
        k_->gemm_nf4_bf16(m.data.data(), m.scales.data(), cols, x.data(), batch, y_split.data(), rows, 0, half);
        k_->gemm_nf4_bf16(m.data.data(), m.scales.data(), cols, x.data(), batch, y_split.data(), rows, half, rows);
        EXPECT_EQ(y, y_split);
        for (size_t b = 0; b < batch; ++b) {
          for (size_t r = 0; r < rows; ++r) {
            double f32 = 0, bf16 = 0, abs_f32 = 0, abs_bf16 = 0;
            for (size_t c = 0; c < cols; ++c) {
              const float wv = wd[r * cols + c], xv = x[b * cols + c];
              f32 += double(wv) * xv;
              abs_f32 += std::fabs(double(wv) * xv);
              const double p = double(to_bf16(wv)) * to_bf16(xv);
              bf16 += p;
              abs_bf16 += std::fabs(p);
            }
            const double got = y[b * rows + r];
            EXPECT_NEAR(got, bf16, 1e-5 * abs_bf16 + 1e-6) << "b " << b << " r " << r;
            EXPECT_NEAR(got, f32, 2.0 * std::ldexp(1.0, -8) * abs_f32 + 1e-5 * abs_f32 + 1e-6) << "b " << b << " r " << r;
          }
        }
      }
    }
  }
}

// matmul_rows takes the bf16 tiles from nf4_bf16_min_batch on and the f32 tiles below it; rows
// whose length is not whole blocks of 64 stay on the f32 dots at any batch.
TEST_P(nf4_bf16, matmul_rows_uses_bf16_tiles_from_the_minimum_batch_on) {
  const size_t rows = 6, cols = 256;
  const std::vector<float> w = random_values(rows * cols, 11);
  const std::vector<float> x = random_values(9 * cols, 12);
  const quantized_matrix m = quantize_matrix(weight_format::nf4, w.data(), rows, cols);
  for (size_t batch : {nf4_bf16_min_batch - 1, nf4_bf16_min_batch, nf4_bf16_min_batch + 1}) {
    std::vector<float> got(batch * rows), want(batch * rows);
    matmul_rows(*k_, m.view(), x.data(), nullptr, batch, got.data(), rows, 0, rows);
    const auto tiles = batch >= nf4_bf16_min_batch ? k_->gemm_nf4_bf16 : k_->gemm_nf4;
    tiles(m.data.data(), m.scales.data(), cols, x.data(), batch, want.data(), rows, 0, rows);
    EXPECT_EQ(got, want) << "batch " << batch;
  }
  // 100 columns: rows start inside a block, no tiles of either kind.
  const size_t odd_cols = 100, batch = nf4_bf16_min_batch + 1;
  const quantized_matrix mo = quantize_matrix(weight_format::nf4, w.data(), rows, odd_cols);
  std::vector<float> got(batch * rows);
  matmul_rows(*k_, mo.view(), x.data(), nullptr, batch, got.data(), rows, 0, rows);
  for (size_t b = 0; b < batch; ++b) {
    for (size_t r = 0; r < rows; ++r) {
      EXPECT_EQ(got[b * rows + r], k_->nf4_f32(mo.data.data(), mo.scales.data(), q::nf4_blocksize, r * odd_cols,
                                               x.data() + b * odd_cols, odd_cols))
          << "b " << b << " r " << r;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(paths, nf4_bf16, testing::Values(isa::avx512, isa::avx512_vnni),
                         [](const testing::TestParamInfo<isa>& info) { return std::string(isa_name(info.param)); });

}  // namespace
}  // namespace moat::cpu::quant

// The AMX NF4 tiles (kernels_nf4_amx.cpp) on random shapes: row lengths of 1, 2 and 33 blocks
// of 64, row counts around the 16-row tile (1..40), batches around the 16-row activation tile
// and the 6-tile pass (8..97). Each output is held to the bf16 tiles' two references:
//  - the same arithmetic done here in double: weights and activations rounded to bf16 (nearest
//    even), exact products, so only the f32 summation order may differ (1e-5 of sum |w||x|);
//  - the f32 product of the dequantized weights within 2 * 2^-8 * sum |w||x| (bf16 rounding).
// And to batch independence: a row's outputs are bit for bit the same in any batch and row
// split, and over many passes of rows (213 rows: whole, in uneven ranges, one by one). Where
// the CPU (or the OS, or MOAT_CPU_AMX=0) gives no AMX, the tiles' tests skip with the reason;
// the dispatch test still checks the tables agree with it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bf16_round.h"
#include "cpu/quant/kernel_tables.h"
#include "cpu/quant/matmul.h"
#include "random_values.h"

namespace moat::cpu::quant {
namespace {

namespace q = engine::quant;

using quant_test::random_values;
using quant_test::to_bf16;

bool amx_disabled_by_env() {
  const char* v = std::getenv("MOAT_CPU_AMX");
  return v != nullptr && std::strcmp(v, "0") == 0;
}

TEST(nf4_amx_dispatch, avx512_tables_have_amx_tiles_exactly_where_available) {
  const char* why = detail::nf4_amx_unavailable();
  std::printf("[ amx ] %s\n", why == nullptr ? "available" : why);
  if (amx_disabled_by_env()) {
    ASSERT_NE(why, nullptr);
    EXPECT_STREQ(why, "MOAT_CPU_AMX=0");
  }
  for (isa i : {isa::avx512, isa::avx512_vnni}) {
    if (!isa_supported(i)) continue;
    EXPECT_EQ(kernels_for(i)->gemm_nf4_amx != nullptr, why == nullptr) << isa_name(i);
  }
  EXPECT_EQ(kernels_for(isa::scalar)->gemm_nf4_amx, nullptr);
  if (isa_supported(isa::avx2)) {
    EXPECT_EQ(kernels_for(isa::avx2)->gemm_nf4_amx, nullptr);
  }
}

class nf4_amx : public testing::Test {
 protected:
  void SetUp() override {
    for (isa i : {isa::avx512_vnni, isa::avx512}) {
      if (isa_supported(i) && kernels_for(i)->gemm_nf4_amx != nullptr) {
        k_ = kernels_for(i);
        return;
      }
    }
    const char* why = detail::nf4_amx_unavailable();
    GTEST_SKIP() << "no AMX NF4 tiles here: " << (why != nullptr ? why : "no AVX-512 path");
  }
  const dot_kernels* k_ = nullptr;
};

TEST_F(nf4_amx, matches_bf16_arithmetic_and_stays_within_the_bf16_bound_of_f32) {
  for (size_t cols : {64u, 128u, 2112u}) {
    for (size_t rows : {1u, 5u, 16u, 17u, 33u, 40u}) {
      const std::vector<float> w =
          random_values(rows * cols, 170 + static_cast<uint32_t>(cols + rows));
      const quantized_matrix m = quantize_matrix(weight_format::nf4, w.data(), rows, cols);
      std::vector<float> wd(rows * cols);
      q::dequantize_nf4(m.data.data(), m.scales.data(), wd.size(), q::nf4_blocksize, wd.data());
      std::vector<float> wb(wd.size());
      for (size_t i = 0; i < wd.size(); ++i) wb[i] = to_bf16(wd[i]);
      for (size_t batch : {8u, 9u, 16u, 17u, 33u, 64u, 97u}) {
        SCOPED_TRACE("cols " + std::to_string(cols) + " rows " + std::to_string(rows) + " batch " +
                     std::to_string(batch));
        const std::vector<float> x =
            random_values(batch * cols, 190 + static_cast<uint32_t>(cols + batch));
        // y_stride wider than rows: outputs land only where they belong.
        const size_t stride = rows + 3;
        std::vector<float> y(batch * stride, -7.0f), y_split(batch * stride, -7.0f);
        k_->gemm_nf4_amx(m.data.data(), m.scales.data(), cols, x.data(), batch, y.data(), stride, 0,
                         rows);
        const size_t cut = rows / 3;  // rows split as threads would, not on a 16-row boundary
        k_->gemm_nf4_amx(m.data.data(), m.scales.data(), cols, x.data(), batch, y_split.data(),
                         stride, 0, cut);
        k_->gemm_nf4_amx(m.data.data(), m.scales.data(), cols, x.data(), batch, y_split.data(),
                         stride, cut, rows);
        ASSERT_EQ(y, y_split);
        size_t bad = 0;
        for (size_t b = 0; b < batch; ++b) {
          for (size_t r = rows; r < stride; ++r)
            ASSERT_EQ(y[b * stride + r], -7.0f) << "b " << b << " r " << r;
          for (size_t r = 0; r < rows; ++r) {
            double f32 = 0, bf16 = 0, abs_f32 = 0, abs_bf16 = 0;
            for (size_t c = 0; c < cols; ++c) {
              const float wv = wd[r * cols + c], xv = x[b * cols + c];
              f32 += double(wv) * xv;
              abs_f32 += std::fabs(double(wv) * xv);
              const double p = double(wb[r * cols + c]) * to_bf16(xv);
              bf16 += p;
              abs_bf16 += std::fabs(p);
            }
            const double got = y[b * stride + r];
            const bool ok =
                std::fabs(got - bf16) <= 1e-5 * abs_bf16 + 1e-6 &&
                std::fabs(got - f32) <= 2.0 * std::ldexp(1.0, -8) * abs_f32 + 1e-5 * abs_f32 + 1e-6;
            if (!ok && ++bad <= 3) {
              ADD_FAILURE() << "b " << b << " r " << r << " got " << got << " bf16 " << bf16
                            << " f32 " << f32 << " sum|wx| " << abs_f32;
            }
          }
        }
        EXPECT_EQ(bad, 0u);
      }
    }
  }
}

// Each activation row's outputs are bit for bit the same whatever else is in the batch: a row
// of a batch of 8..40 against a batch of 8 copies of it (each copy in its own tile position).
TEST_F(nf4_amx, outputs_do_not_depend_on_the_batch) {
  const size_t rows = 37, cols = 320;
  const std::vector<float> w = random_values(rows * cols, 31);
  const quantized_matrix m = quantize_matrix(weight_format::nf4, w.data(), rows, cols);
  for (size_t batch : {8u, 9u, 17u, 33u, 40u}) {
    const std::vector<float> x = random_values(batch * cols, 40 + static_cast<uint32_t>(batch));
    std::vector<float> y(batch * rows);
    k_->gemm_nf4_amx(m.data.data(), m.scales.data(), cols, x.data(), batch, y.data(), rows, 0,
                     rows);
    for (size_t b = 0; b < batch; ++b) {
      std::vector<float> copies(8 * cols), yc(8 * rows);
      for (size_t j = 0; j < 8; ++j)
        std::memcpy(copies.data() + j * cols, x.data() + b * cols, cols * sizeof(float));
      k_->gemm_nf4_amx(m.data.data(), m.scales.data(), cols, copies.data(), 8, yc.data(), rows, 0,
                       rows);
      for (size_t j = 0; j < 8; ++j) {
        for (size_t r = 0; r < rows; ++r) {
          ASSERT_EQ(yc[j * rows + r], y[b * rows + r])
              << "batch " << batch << " b " << b << " copy " << j << " r " << r;
        }
      }
    }
  }
}

// Calls over many 16-row blocks take several passes (64 rows a pass at one activation group,
// 32 at two, 16 beyond), each prefetching the next pass's rows, the first its own: a call over
// all rows, calls over uneven row ranges (as the engine's thread chunks are) and one call per
// row all give the same bits, within the bf16 bound of the f32 product.
TEST_F(nf4_amx, many_passes_give_the_bits_of_one_row_at_a_time) {
  for (size_t cols : {64u, 192u, 1152u}) {
    const size_t rows = 213;  // 3 passes of 64 and a partial one at batch 8
    const std::vector<float> w = random_values(rows * cols, 300 + static_cast<uint32_t>(cols));
    const quantized_matrix m = quantize_matrix(weight_format::nf4, w.data(), rows, cols);
    std::vector<float> wd(rows * cols);
    q::dequantize_nf4(m.data.data(), m.scales.data(), wd.size(), q::nf4_blocksize, wd.data());
    for (size_t batch : {8u, 20u, 40u}) {
      SCOPED_TRACE("cols " + std::to_string(cols) + " batch " + std::to_string(batch));
      const std::vector<float> x = random_values(batch * cols, 400 + static_cast<uint32_t>(batch));
      std::vector<float> whole(batch * rows), ranges(batch * rows), single(batch * rows);
      k_->gemm_nf4_amx(m.data.data(), m.scales.data(), cols, x.data(), batch, whole.data(), rows, 0,
                       rows);
      for (size_t r0 = 0; r0 < rows;) {
        const size_t r1 = std::min(rows, r0 + 71);
        k_->gemm_nf4_amx(m.data.data(), m.scales.data(), cols, x.data(), batch, ranges.data(), rows,
                         r0, r1);
        r0 = r1;
      }
      for (size_t r = 0; r < rows; ++r)
        k_->gemm_nf4_amx(m.data.data(), m.scales.data(), cols, x.data(), batch, single.data(), rows,
                         r, r + 1);
      ASSERT_EQ(whole, ranges);
      ASSERT_EQ(whole, single);
      size_t bad = 0;
      for (size_t b = 0; b < batch; ++b) {
        for (size_t r = 0; r < rows; ++r) {
          double f32 = 0, abs_f32 = 0;
          for (size_t c = 0; c < cols; ++c) {
            const double p = double(wd[r * cols + c]) * x[b * cols + c];
            f32 += p;
            abs_f32 += std::fabs(p);
          }
          const double got = whole[b * rows + r];
          if (std::fabs(got - f32) > 2.0 * std::ldexp(1.0, -8) * abs_f32 + 1e-5 * abs_f32 + 1e-6 &&
              ++bad <= 3)
            ADD_FAILURE() << "b " << b << " r " << r << " got " << got << " f32 " << f32;
        }
      }
      EXPECT_EQ(bad, 0u);
    }
  }
}

// matmul_rows takes the AMX tiles from nf4_bf16_min_batch on, the f32 tiles below it.
TEST_F(nf4_amx, matmul_rows_uses_amx_tiles_from_the_minimum_batch_on) {
  const size_t rows = 21, cols = 256;
  const std::vector<float> w = random_values(rows * cols, 51);
  const std::vector<float> x = random_values(20 * cols, 52);
  const quantized_matrix m = quantize_matrix(weight_format::nf4, w.data(), rows, cols);
  for (size_t batch :
       {nf4_bf16_min_batch - 1, nf4_bf16_min_batch, nf4_bf16_min_batch + 1, size_t{20}}) {
    std::vector<float> got(batch * rows), want(batch * rows);
    matmul_rows(*k_, m.view(), x.data(), nullptr, batch, got.data(), rows, 0, rows);
    const auto tiles = batch >= nf4_bf16_min_batch ? k_->gemm_nf4_amx : k_->gemm_nf4;
    tiles(m.data.data(), m.scales.data(), cols, x.data(), batch, want.data(), rows, 0, rows);
    EXPECT_EQ(got, want) << "batch " << batch;
  }
}

}  // namespace
}  // namespace moat::cpu::quant

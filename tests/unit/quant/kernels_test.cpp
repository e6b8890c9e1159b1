// Every SIMD path of backends/cpu/quant against the scalar references of engine/quant, on
// random shapes including sizes that are not a multiple of the block. A path this CPU lacks is
// skipped with a message.
#include "cpu/quant/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "random_values.h"

namespace moat::cpu::quant {
namespace {

namespace q = engine::quant;

using quant_test::random_values;

// Same integer sums, different float summation order: relative to the sum of |terms|,
// bounded here by |w| . |x| over the dequantized values.
double tolerance(const std::vector<float>& w, const std::vector<float>& x) {
  double s = 0.0;
  for (size_t i = 0; i < x.size(); ++i) s += std::fabs(static_cast<double>(w[i]) * x[i]);
  return 1e-5 * s + 1e-6;
}

const size_t test_sizes[] = {1, 17, 32, 33, 64, 100, 255, 256, 1000, 4099};

class simd : public testing::TestWithParam<isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) {
      GTEST_SKIP() << "this CPU (or build) has no " << isa_name(GetParam()) << " path";
    }
    k_ = kernels_for(GetParam());
    ASSERT_NE(k_, nullptr);
    ASSERT_EQ(k_->which, GetParam());
  }
  const dot_kernels* k_ = nullptr;
};

TEST_P(simd, quantize_q8_0_matches_reference_exactly) {
  for (size_t n : test_sizes) {
    std::vector<float> x = random_values(n, static_cast<uint32_t>(n));
    if (n >= 64) {
      for (size_t i = 32; i < 64; ++i) x[i] = 0.0f;  // an all-zero block
      x[3] = 127.0f * 0.5f;                          // values that land on .5 steps
      x[4] = -127.0f;
      x[5] = 0.5f;
    }
    std::vector<q::block_q8_0> want(q::q8_0_blocks(n)), got(q::q8_0_blocks(n));
    q::quantize_q8_0(x.data(), n, want.data());
    k_->quantize_q8_0(x.data(), n, got.data());
    for (size_t b = 0; b < want.size(); ++b) {
      ASSERT_EQ(want[b].d, got[b].d) << "n " << n << " block " << b;
      for (size_t i = 0; i < 32; ++i) ASSERT_EQ(want[b].qs[i], got[b].qs[i]) << "n " << n << " block " << b << " " << i;
    }
  }
}

TEST_P(simd, q8_0_and_q4_0_dots_match_reference) {
  for (size_t n : test_sizes) {
    const std::vector<float> w = random_values(n, 100 + static_cast<uint32_t>(n));
    const std::vector<float> x = random_values(n, 200 + static_cast<uint32_t>(n));
    std::vector<q::block_q8_0> w8(q::q8_0_blocks(n)), xq(q::q8_0_blocks(n));
    std::vector<q::block_q4_0> w4(q::q4_0_blocks(n));
    q::quantize_q8_0(w.data(), n, w8.data());
    q::quantize_q4_0(w.data(), n, w4.data());
    q::quantize_q8_0(x.data(), n, xq.data());
    const double tol = tolerance(w, x) * 2;
    EXPECT_NEAR(k_->q8_0_q8_0(w8.data(), xq.data(), n), q::dot_q8_0_q8_0(w8.data(), xq.data(), n), tol) << n;
    EXPECT_NEAR(k_->q4_0_q8_0(w4.data(), xq.data(), n), q::dot_q4_0_q8_0(w4.data(), xq.data(), n), tol) << n;
  }
}

TEST_P(simd, int8_and_int4_dots_match_reference) {
  for (size_t n : test_sizes) {
    const std::vector<float> w = random_values(n, 300 + static_cast<uint32_t>(n), 0.05f);
    const std::vector<float> x = random_values(n, 400 + static_cast<uint32_t>(n));
    std::vector<q::block_q8_0> xq(q::q8_0_blocks(n));
    q::quantize_q8_0(x.data(), n, xq.data());
    const double tol = tolerance(w, x) * 2;
    std::vector<int8_t> w8(n);
    float scale = 0.0f;
    q::quantize_int8_row(w.data(), n, w8.data(), &scale);
    EXPECT_NEAR(k_->int8_q8_0(w8.data(), scale, xq.data(), n), q::dot_int8_q8_0(w8.data(), scale, xq.data(), n), tol)
        << n;
    for (size_t group : {32u, 64u, 128u}) {
      std::vector<uint8_t> w4(q::int4_row_bytes(n, group));
      std::vector<float> s(q::int4_row_groups(n, group));
      q::quantize_int4_row(w.data(), n, group, w4.data(), s.data());
      EXPECT_NEAR(k_->int4_q8_0(w4.data(), s.data(), group, xq.data(), n),
                  q::dot_int4_q8_0(w4.data(), s.data(), group, xq.data(), n), tol)
          << n << " group " << group;
    }
  }
}

TEST_P(simd, nf4_rows_match_reference) {
  // Matrices whose rows start anywhere in a block (cols not a multiple of 64, odd cols).
  for (size_t blocksize : {64u, 128u}) {
    for (size_t cols : {1u, 31u, 64u, 100u, 257u, 1000u}) {
      const size_t rows = 5;
      const std::vector<float> w = random_values(rows * cols, 500 + static_cast<uint32_t>(cols));
      const std::vector<float> x = random_values(cols, 600 + static_cast<uint32_t>(cols));
      const q::nf4_tensor t = q::quantize_nf4(w.data(), w.size(), blocksize);
      std::vector<float> y(rows), want(rows);
      gemv_nf4(*k_, t.packed.data(), t.absmax.data(), blocksize, cols, x.data(), y.data(), 0, rows);
      for (size_t r = 0; r < rows; ++r) {
        want[r] = q::dot_nf4_f32(t.packed.data(), t.absmax.data(), blocksize, r * cols, x.data(), cols);
        const std::vector<float> row(w.begin() + static_cast<long>(r * cols), w.begin() + static_cast<long>((r + 1) * cols));
        EXPECT_NEAR(y[r], want[r], tolerance(row, x) * 4) << "blocksize " << blocksize << " cols " << cols << " row " << r;
      }
    }
  }
}

TEST_P(simd, gemv_and_gemm_match_row_by_row_reference) {
  const size_t rows = 7;
  const size_t batch = 3;
  for (size_t cols : {32u, 96u, 4096u}) {
    const std::vector<float> w = random_values(rows * cols, 700 + static_cast<uint32_t>(cols));
    const std::vector<float> x = random_values(batch * cols, 800 + static_cast<uint32_t>(cols));
    const size_t nb = q::q8_0_blocks(cols);
    std::vector<q::block_q8_0> w8(rows * nb), xq(batch * nb);
    std::vector<q::block_q4_0> w4(rows * nb);
    for (size_t r = 0; r < rows; ++r) {
      q::quantize_q8_0(w.data() + r * cols, cols, w8.data() + r * nb);
      q::quantize_q4_0(w.data() + r * cols, cols, w4.data() + r * nb);
    }
    for (size_t b = 0; b < batch; ++b) k_->quantize_q8_0(x.data() + b * cols, cols, xq.data() + b * nb);
    std::vector<float> y8(batch * rows), y4(batch * rows), v(rows);
    gemm_q8_0(*k_, w8.data(), cols, xq.data(), batch, y8.data(), rows, 0, rows);
    gemm_q4_0(*k_, w4.data(), cols, xq.data(), batch, y4.data(), rows, 0, rows);
    for (size_t b = 0; b < batch; ++b) {
      gemv_q8_0(*k_, w8.data(), cols, xq.data() + b * nb, v.data(), 0, rows);
      for (size_t r = 0; r < rows; ++r) {
        const std::vector<float> row(w.begin() + static_cast<long>(r * cols), w.begin() + static_cast<long>((r + 1) * cols));
        const std::vector<float> xb(x.begin() + static_cast<long>(b * cols), x.begin() + static_cast<long>((b + 1) * cols));
        const double tol = tolerance(row, xb) * 2;
        EXPECT_EQ(y8[b * rows + r], v[r]);
        EXPECT_NEAR(y8[b * rows + r], q::dot_q8_0_q8_0(w8.data() + r * nb, xq.data() + b * nb, cols), tol);
        EXPECT_NEAR(y4[b * rows + r], q::dot_q4_0_q8_0(w4.data() + r * nb, xq.data() + b * nb, cols), tol);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(paths, simd, testing::Values(isa::scalar, isa::avx2, isa::avx512, isa::avx512_vnni),
                         [](const testing::TestParamInfo<isa>& info) { return std::string(isa_name(info.param)); });

TEST(dispatch, best_isa_is_supported_and_kernels_match_it) {
  EXPECT_TRUE(isa_supported(best_isa()));
  EXPECT_EQ(kernels().which, best_isa());
  std::printf("best path on this CPU: %s\n", isa_name(best_isa()));
}

TEST(dispatch, environment_can_lower_the_path_but_not_raise_it) {
  const isa best = best_isa();
  ::setenv("MOAT_CPU_ISA", "scalar", 1);
  EXPECT_EQ(best_isa(), isa::scalar);
  ::setenv("MOAT_CPU_ISA", "no_such_isa", 1);
  EXPECT_EQ(best_isa(), best);
  ::unsetenv("MOAT_CPU_ISA");
  EXPECT_EQ(best_isa(), best);
  EXPECT_EQ(kernels_for(isa::scalar)->which, isa::scalar);
}

}  // namespace
}  // namespace moat::cpu::quant

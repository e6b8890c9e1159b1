// matmul_rows, the forward pass's entry point: every format on every path this CPU has, against
// a float matmul over the dequantized weights (exactly the same weights, only the activation
// quantization differs) and against the full-precision matmul (the format's own error).
#include "cpu/quant/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "random_values.h"

namespace moat::cpu::quant {
namespace {

namespace q = engine::quant;

using quant_test::random_values;

// The weights as the format stores them, as floats.
std::vector<float> dequantized(const quantized_matrix& m) {
  std::vector<float> out(m.rows * m.cols);
  for (size_t r = 0; r < m.rows; ++r) {
    float* row = out.data() + r * m.cols;
    switch (m.format) {
      case weight_format::q8_0:
        q::dequantize_q8_0(reinterpret_cast<const q::block_q8_0*>(m.data.data()) + r * q::q8_0_blocks(m.cols), m.cols, row);
        break;
      case weight_format::q4_0:
        q::dequantize_q4_0(reinterpret_cast<const q::block_q4_0*>(m.data.data()) + r * q::q4_0_blocks(m.cols), m.cols, row);
        break;
      case weight_format::int8:
        for (size_t c = 0; c < m.cols; ++c) row[c] = m.scales[r] * static_cast<float>(static_cast<int8_t>(m.data[r * m.cols + c]));
        break;
      case weight_format::nf4: break;
      default: {
        const size_t g = m.format == weight_format::int4_g32 ? 32 : m.format == weight_format::int4_g64 ? 64 : 128;
        q::dequantize_int4_row(m.data.data() + r * q::int4_row_bytes(m.cols, g), m.scales.data() + r * q::int4_row_groups(m.cols, g),
                               g, m.cols, row);
      }
    }
  }
  if (m.format == weight_format::nf4) q::dequantize_nf4(m.data.data(), m.scales.data(), out.size(), 64, out.data());
  return out;
}

struct format_case {
  weight_format format;
  double own_error;  // of the format itself, relative to |w_row| |x|
};

class matmul : public testing::TestWithParam<isa> {};

TEST_P(matmul, every_format_matches_float_matmul) {
  if (!isa_supported(GetParam())) GTEST_SKIP() << "this CPU (or build) has no " << isa_name(GetParam()) << " path";
  const dot_kernels& k = *kernels_for(GetParam());
  const format_case cases[] = {{weight_format::q8_0, 0.01},     {weight_format::int8, 0.01},
                               {weight_format::q4_0, 0.12},     {weight_format::int4_g32, 0.12},
                               {weight_format::int4_g64, 0.12}, {weight_format::int4_g128, 0.12},
                               {weight_format::nf4, 0.12}};
  const size_t rows = 9;
  const size_t batch = 3;
  for (size_t cols : {64u, 100u, 4096u}) {
    const std::vector<float> w = random_values(rows * cols, static_cast<uint32_t>(cols));
    const std::vector<float> x = random_values(batch * cols, static_cast<uint32_t>(cols) + 1);
    for (const format_case& fc : cases) {
      SCOPED_TRACE(std::string(weight_format_name(fc.format)) + " cols " + std::to_string(cols));
      const quantized_matrix m = quantize_matrix(fc.format, w.data(), rows, cols);
      const std::vector<float> wd = dequantized(m);
      std::vector<block_q8_0> xq(activation_blocks(fc.format, cols, batch));
      prepare_activations(k, fc.format, x.data(), batch, cols, xq.data());
      std::vector<float> y(batch * rows), y_split(batch * rows);
      matmul_rows(k, m.view(), x.data(), xq.data(), batch, y.data(), rows, 0, rows);
      matmul_rows(k, m.view(), x.data(), xq.data(), batch, y_split.data(), rows, 0, 4);  // rows split as threads would
      matmul_rows(k, m.view(), x.data(), xq.data(), batch, y_split.data(), rows, 4, rows);
      EXPECT_EQ(y, y_split);
      for (size_t b = 0; b < batch; ++b) {
        for (size_t r = 0; r < rows; ++r) {
          double exact = 0, stored = 0, wn = 0, xn = 0;
          for (size_t c = 0; c < cols; ++c) {
            exact += double(w[r * cols + c]) * x[b * cols + c];
            stored += double(wd[r * cols + c]) * x[b * cols + c];
            wn += double(w[r * cols + c]) * w[r * cols + c];
            xn += double(x[b * cols + c]) * x[b * cols + c];
          }
          const double norm = std::sqrt(wn * xn);
          const double got = y[b * rows + r];
          // Only the activations' 8-bit rounding (none for nf4) separates got from stored.
          EXPECT_NEAR(got, stored, (fc.format == weight_format::nf4 ? 1e-5 : 0.01) * norm) << "b " << b << " r " << r;
          EXPECT_NEAR(got, exact, (fc.own_error + 0.01) * norm) << "b " << b << " r " << r;
        }
      }
    }
  }
}

// The matrix-matrix tiles (each weight block loaded once for a tile of activation rows)
// against the same path's one-dot-per-output loop, and against the scalar reference, for every
// batch size up to 9 (full tiles of 4 and each remainder), row counts that leave single rows,
// and row lengths with odd block counts and partial blocks. Each output must not depend on the
// batch or the row split: row b of a batch equals that row run alone, bit for bit.
TEST_P(matmul, tiles_match_dots_at_every_batch_and_split) {
  if (!isa_supported(GetParam())) GTEST_SKIP() << "this CPU (or build) has no " << isa_name(GetParam()) << " path";
  // The f32 tiles at every batch: the bf16 and AMX ones (batch >= nf4_bf16_min_batch) round
  // weights and activations, so they are held to their own bound in nf4_bf16_test.cpp and
  // nf4_amx_test.cpp.
  dot_kernels f32_tiles = *kernels_for(GetParam());
  f32_tiles.gemm_nf4_bf16 = nullptr;
  f32_tiles.gemm_nf4_amx = nullptr;
  const dot_kernels& k = f32_tiles;
  dot_kernels dots = k;  // the same path without tiles: the fallback loop over k's dots
  dots.gemm_q8_0 = nullptr;
  dots.gemm_q4_0 = nullptr;
  dots.gemm_int8 = nullptr;
  dots.gemm_int4 = nullptr;
  dots.gemm_nf4 = nullptr;
  dots.gemm_q4_0_amx = nullptr;
  dots.gemm_int4_amx = nullptr;
  const dot_kernels& scalar = *kernels_for(isa::scalar);
  const size_t rows = 11;
  for (size_t cols : {32u, 96u, 136u, 192u, 2112u}) {
    const std::vector<float> w = random_values(rows * cols, 40 + static_cast<uint32_t>(cols));
    const std::vector<float> x = random_values(9 * cols, 50 + static_cast<uint32_t>(cols));
    for (weight_format f : {weight_format::q8_0, weight_format::q4_0, weight_format::int8, weight_format::int4_g32,
                            weight_format::int4_g64, weight_format::int4_g128, weight_format::nf4}) {
      SCOPED_TRACE(std::string(weight_format_name(f)) + " cols " + std::to_string(cols));
      const quantized_matrix m = quantize_matrix(f, w.data(), rows, cols);
      for (size_t batch = 1; batch <= 9; ++batch) {
        std::vector<block_q8_0> xq(activation_blocks(f, cols, batch));
        prepare_activations(k, f, x.data(), batch, cols, xq.data());
        std::vector<float> y(batch * rows), y_dots(batch * rows), y_ref(batch * rows), y_split(batch * rows);
        matmul_rows(k, m.view(), x.data(), xq.data(), batch, y.data(), rows, 0, rows);
        matmul_rows(dots, m.view(), x.data(), xq.data(), batch, y_dots.data(), rows, 0, rows);
        matmul_rows(scalar, m.view(), x.data(), xq.data(), batch, y_ref.data(), rows, 0, rows);
        matmul_rows(k, m.view(), x.data(), xq.data(), batch, y_split.data(), rows, 0, 5);
        matmul_rows(k, m.view(), x.data(), xq.data(), batch, y_split.data(), rows, 5, rows);
        EXPECT_EQ(y, y_split) << "batch " << batch;
        for (size_t b = 0; b < batch; ++b) {
          std::vector<float> alone(rows);
          const block_q8_0* xq_b = f == weight_format::nf4 ? nullptr : xq.data() + b * q::q8_0_blocks(cols);
          matmul_rows(k, m.view(), x.data() + b * cols, xq_b, 1, alone.data(), rows, 0, rows);
          double xn = 0;
          for (size_t c = 0; c < cols; ++c) xn += double(x[b * cols + c]) * x[b * cols + c];
          for (size_t r = 0; r < rows; ++r) {
            EXPECT_EQ(y[b * rows + r], alone[r]) << "batch " << batch << " b " << b << " r " << r;
            double wn = 0;
            for (size_t c = 0; c < cols; ++c) wn += double(w[r * cols + c]) * w[r * cols + c];
            // Same integer (or float) products, only the order of the float sums differs.
            const double tol = 1e-5 * std::sqrt(wn * xn) + 1e-6;
            EXPECT_NEAR(y[b * rows + r], y_dots[b * rows + r], tol) << "batch " << batch << " b " << b << " r " << r;
            EXPECT_NEAR(y[b * rows + r], y_ref[b * rows + r], tol) << "batch " << batch << " b " << b << " r " << r;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(paths, matmul, testing::Values(isa::scalar, isa::avx2, isa::avx512, isa::avx512_vnni),
                         [](const testing::TestParamInfo<isa>& info) { return std::string(isa_name(info.param)); });

TEST(weight_format, names_and_sizes) {
  EXPECT_EQ(parse_weight_format("int4"), weight_format::int4_g64);
  EXPECT_EQ(parse_weight_format("nf4"), weight_format::nf4);
  EXPECT_FALSE(parse_weight_format("int3").has_value());
  for (const char* name : {"q8_0", "q4_0", "int8", "int4_g32", "int4_g64", "int4_g128", "nf4"}) {
    EXPECT_EQ(weight_format_name(*parse_weight_format(name)), std::string(name));
  }
  const size_t f32 = 4096 * 4096 * 4;
  EXPECT_LT(weight_bytes(weight_format::int8, 4096, 4096), f32 / 3);
  // Single-level NF4 (fp32 absmax per 64) and Q4_0 (fp16 scale per 32) both take 4.5 bits.
  EXPECT_EQ(weight_bytes(weight_format::nf4, 4096, 4096), 4096u * 4096 / 2 + 4096u * 4096 / 64 * 4);
  EXPECT_EQ(weight_bytes(weight_format::q4_0, 4096, 4096), 4096u * 4096 / 32 * 18);
  const quantized_matrix m = quantize_matrix(weight_format::int4_g128, random_values(3 * 300, 1).data(), 3, 300);
  EXPECT_EQ(m.data.size() + m.scales.size() * 4, weight_bytes(weight_format::int4_g128, 3, 300));
}

}  // namespace
}  // namespace moat::cpu::quant

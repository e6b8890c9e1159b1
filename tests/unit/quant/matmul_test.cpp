// matmul_rows, the forward pass's entry point: every format on every path this CPU has, against
// a float matmul over the dequantized weights (exactly the same weights, only the activation
// quantization differs) and against the full-precision matmul (the format's own error).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "cpu/quant/matmul.h"

namespace moat::cpu::quant {
namespace {

namespace q = engine::quant;

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

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

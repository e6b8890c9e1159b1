// Each weight format: round-trip error bounds, layout details (nibble order, padding), and the
// reference dot products against a dot over the dequantized weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "engine/quant/fp16.h"
#include "engine/quant/int4.h"
#include "engine/quant/int8.h"
#include "engine/quant/nf4.h"
#include "random_values.h"

namespace moat::engine::quant {
namespace {

using quant_test::random_values;

double dot(const std::vector<float>& a, const float* b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

TEST(fp16, round_trips_and_rounds_to_nearest_even) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.9604645e-08f, 0.333251953125f}) {
    EXPECT_EQ(fp16_to_fp32(fp32_to_fp16(f)), f) << f;
  }
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(fp32_to_fp16(1e6f), 0x7c00);                  // overflow -> inf
  EXPECT_EQ(fp32_to_fp16(1.0f + 1.0f / 2048.0f), 0x3c00);  // a tie rounds to even
  EXPECT_EQ(fp32_to_fp16(1.0f + 3.0f / 2048.0f), 0x3c02);
  EXPECT_EQ(fp32_to_fp16(2.0e-8f), 0x0000);                // below half the smallest subnormal
  EXPECT_EQ(fp32_to_fp16(4.0e-8f), 0x0001);
  // Every half value survives the trip through float.
  for (uint32_t h = 0; h < 0x7c00; ++h) ASSERT_EQ(fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h))), h);
}

class sizes : public testing::TestWithParam<size_t> {};

TEST_P(sizes, q8_0_round_trip_within_half_a_step) {
  const size_t n = GetParam();
  const std::vector<float> x = random_values(n, 1);
  std::vector<block_q8_0> q(q8_0_blocks(n));
  quantize_q8_0(x.data(), n, q.data());
  std::vector<float> y(n);
  dequantize_q8_0(q.data(), n, y.data());
  for (size_t i = 0; i < n; ++i) {
    const float d = fp16_to_fp32(q[i / 32].d);
    // Half a step, plus the fp16 rounding of the scale (relative 2^-11 of up to 127 steps).
    ASSERT_LE(std::fabs(x[i] - y[i]), d * (0.5f + 127.0f / 2048.0f) + 1e-7f) << i;
  }
  for (size_t i = n; i < q.size() * 32; ++i) EXPECT_EQ(q[i / 32].qs[i % 32], 0);  // padding
  const std::vector<float> a = random_values(n, 2);
  EXPECT_NEAR(dot_q8_0_f32(q.data(), a.data(), n), dot(a, y.data()), 1e-4 * (1.0 + std::sqrt(double(n))));
  std::vector<block_q8_0> qa(q8_0_blocks(n));
  quantize_q8_0(a.data(), n, qa.data());
  std::vector<float> ya(n);
  dequantize_q8_0(qa.data(), n, ya.data());
  EXPECT_NEAR(dot_q8_0_q8_0(q.data(), qa.data(), n), dot(ya, y.data()), 1e-4 * (1.0 + std::sqrt(double(n))));
}

TEST_P(sizes, int8_channel_round_trip_within_half_a_step) {
  const size_t cols = GetParam();
  const size_t rows = 5;
  const std::vector<float> w = random_values(rows * cols, 3, 0.05f);
  const int8_matrix m = quantize_int8_channel(w.data(), rows, cols);
  std::vector<float> y(rows * cols);
  dequantize_int8_channel(m, y.data());
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) ASSERT_LE(std::fabs(w[r * cols + c] - y[r * cols + c]), m.scales[r] * 0.5001f);
  }
  const std::vector<float> a = random_values(cols, 4);
  std::vector<block_q8_0> qa(q8_0_blocks(cols));
  quantize_q8_0(a.data(), cols, qa.data());
  std::vector<float> ya(cols);
  dequantize_q8_0(qa.data(), cols, ya.data());
  for (size_t r = 0; r < rows; ++r) {
    const std::vector<float> row(y.begin() + static_cast<long>(r * cols), y.begin() + static_cast<long>((r + 1) * cols));
    EXPECT_NEAR(dot_int8_f32(m.row(r), m.scales[r], a.data(), cols), dot(row, a.data()), 1e-5 * (1.0 + cols));
    EXPECT_NEAR(dot_int8_q8_0(m.row(r), m.scales[r], qa.data(), cols), dot(row, ya.data()), 1e-5 * (1.0 + cols));
  }
}

TEST_P(sizes, q4_0_round_trip_within_one_step) {
  const size_t n = GetParam();
  const std::vector<float> x = random_values(n, 5);
  std::vector<block_q4_0> q(q4_0_blocks(n));
  quantize_q4_0(x.data(), n, q.data());
  std::vector<float> y(n);
  dequantize_q4_0(q.data(), n, y.data());
  for (size_t i = 0; i < n; ++i) {
    const float d = std::fabs(fp16_to_fp32(q[i / 32].d));
    // Half a step, but a full one at the top: the value of largest magnitude maps to -8 and
    // the positive side ends at 7.
    ASSERT_LE(std::fabs(x[i] - y[i]), d * (1.0f + 8.0f / 2048.0f) + 1e-6f) << i;
  }
  const std::vector<float> a = random_values(n, 6);
  EXPECT_NEAR(dot_q4_0_f32(q.data(), a.data(), n), dot(a, y.data()), 1e-4 * (1.0 + std::sqrt(double(n))));
  std::vector<block_q8_0> qa(q8_0_blocks(n));
  quantize_q8_0(a.data(), n, qa.data());
  std::vector<float> ya(n);
  dequantize_q8_0(qa.data(), n, ya.data());
  EXPECT_NEAR(dot_q4_0_q8_0(q.data(), qa.data(), n), dot(ya, y.data()), 1e-4 * (1.0 + std::sqrt(double(n))));
}

TEST_P(sizes, int4_groups_round_trip_within_one_step) {
  const size_t n = GetParam();
  const std::vector<float> x = random_values(n, 7, 0.02f);
  const std::vector<float> a = random_values(n, 8);
  std::vector<block_q8_0> qa(q8_0_blocks(n));
  quantize_q8_0(a.data(), n, qa.data());
  std::vector<float> ya(n);
  dequantize_q8_0(qa.data(), n, ya.data());
  for (size_t group : {32u, 64u, 128u}) {
    std::vector<uint8_t> q(int4_row_bytes(n, group));
    std::vector<float> s(int4_row_groups(n, group));
    quantize_int4_row(x.data(), n, group, q.data(), s.data());
    std::vector<float> y(n);
    dequantize_int4_row(q.data(), s.data(), group, n, y.data());
    for (size_t i = 0; i < n; ++i) ASSERT_LE(std::fabs(x[i] - y[i]), std::fabs(s[i / group]) * 1.0001f) << group << " " << i;
    EXPECT_NEAR(dot_int4_f32(q.data(), s.data(), group, a.data(), n), dot(a, y.data()), 1e-5 * (1.0 + n));
    EXPECT_NEAR(dot_int4_q8_0(q.data(), s.data(), group, qa.data(), n), dot(ya, y.data()), 1e-5 * (1.0 + n));
  }
}

TEST_P(sizes, nf4_round_trip_within_half_the_widest_gap) {
  const size_t n = GetParam();
  const std::vector<float> x = random_values(n, 9);
  const nf4_tensor t = quantize_nf4(x.data(), n);
  std::vector<float> y(n);
  dequantize_nf4(t.packed.data(), t.absmax.data(), n, nf4_blocksize, y.data());
  // The widest gap between neighbouring NF4 values is -0.696 - (-1) = 0.304.
  for (size_t i = 0; i < n; ++i) ASSERT_LE(std::fabs(x[i] - y[i]), t.absmax[i / 64] * 0.1520f + 1e-7f) << i;
  // Double quantization: each absmax is off by at most half the dynamic map's widest gap
  // (0.0140625 between its top entries) times its 256-block's second-level scale.
  const nf4_double_quant dq = double_quantize(t.absmax.data(), t.absmax.size());
  std::vector<float> absmax(t.absmax.size());
  dequantize_absmax(dq, absmax.data());
  for (size_t b = 0; b < absmax.size(); ++b) EXPECT_NEAR(absmax[b], t.absmax[b], 0.00704 * dq.absmax2[b / 256] + 1e-6) << b;
  // A row that starts inside a block.
  const size_t start = n / 3;
  const size_t len = n - start;
  const std::vector<float> a = random_values(len, 10);
  EXPECT_NEAR(dot_nf4_f32(t.packed.data(), t.absmax.data(), nf4_blocksize, start, a.data(), len),
              dot(a, y.data() + start), 1e-4 * (1.0 + std::sqrt(double(n))));
}

INSTANTIATE_TEST_SUITE_P(n, sizes, testing::Values(1, 31, 32, 64, 100, 129, 1000, 4096, 5000));

TEST(q4_0, nibble_order_is_llama_cpp) {
  // Value j in the low nibble of byte j, value j + 16 in the high nibble; -8 offset.
  std::vector<float> x(32);
  for (size_t i = 0; i < 32; ++i) x[i] = i < 16 ? -8.0f : 7.0f;
  block_q4_0 b{};
  quantize_q4_0(x.data(), 32, &b);
  EXPECT_EQ(fp16_to_fp32(b.d), 1.0f);  // largest magnitude -8 maps to -8
  for (size_t j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], 0xf0) << j;
}

TEST(int4, rejects_other_group_sizes) {
  std::vector<float> x(48, 1.0f);
  std::vector<uint8_t> q(64);
  std::vector<float> s(4);
  EXPECT_THROW(quantize_int4_row(x.data(), 48, 48, q.data(), s.data()), std::invalid_argument);
}

TEST(nf4, first_element_in_the_high_nibble) {
  const std::vector<float> x = {1.0f, -1.0f, 0.0f};
  const nf4_tensor t = quantize_nf4(x.data(), x.size());
  ASSERT_EQ(t.packed.size(), 2u);
  EXPECT_EQ(t.packed[0], 0xf0);  // code 15 (1.0) high, code 0 (-1.0) low
  EXPECT_EQ(t.packed[1], 0x77);  // 0.0 then the odd-length pad, both code 7
  EXPECT_EQ(t.absmax[0], 1.0f);
}

TEST(nf4, dynamic_map_shape) {
  const auto& m = dynamic_map();
  EXPECT_EQ(m.back(), 1.0f);
  EXPECT_TRUE(std::is_sorted(m.begin(), m.end()));
  EXPECT_EQ(std::count(m.begin(), m.end(), 0.0f), 1);
}

}  // namespace
}  // namespace moat::engine::quant

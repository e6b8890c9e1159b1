// The VNNI 4-bit matrix products (gemm_lanes_avx512.inc: 16 weight rows in the lanes of a
// register, integer block sums) on matrices tall enough for whole 16-row tiles and a partial
// last one: every output equals, bit for bit, the scalar form of that kernel's arithmetic
// (per block T = exact integer dot, acc = fma(float(T), d_w * d_a, acc) in block order), for
// every batch size and row split; and it stays within float rounding of the scalar reference.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "cpu/quant/matmul.h"
#include "engine/quant/fp16.h"
#include "random_values.h"

namespace moat::cpu::quant {
namespace {

namespace q = engine::quant;

using quant_test::random_values;

// Code j (0..15) of a 32-value block stored as 16 Q4_0-ordered bytes.
int code(const uint8_t* qs, size_t j) { return j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4; }

// The kernel's arithmetic, one output at a time, in plain C++.
float lanes_reference(const quantized_matrix& m, size_t r, const block_q8_0* a) {
  const size_t nb = q::q8_0_blocks(m.cols);
  float acc = 0.0f;
  for (size_t i = 0; i < nb; ++i) {
    const uint8_t* qs;
    float dw;
    if (m.format == weight_format::q4_0) {
      const auto* blocks = reinterpret_cast<const q::block_q4_0*>(m.data.data());
      qs = blocks[r * nb + i].qs;
      dw = q::fp16_to_fp32(blocks[r * nb + i].d);
    } else {
      const size_t g = m.format == weight_format::int4_g32   ? 32
                       : m.format == weight_format::int4_g64 ? 64
                                                             : 128;
      qs = m.data.data() + r * q::int4_row_bytes(m.cols, g) + i * 16;
      dw = m.scales[r * q::int4_row_groups(m.cols, g) + i * 32 / g];
    }
    int32_t t = 0;
    for (size_t j = 0; j < 32; ++j) t += (code(qs, j) - 8) * a[i].qs[j];
    acc = std::fma(static_cast<float>(t), dw * q::fp16_to_fp32(a[i].d), acc);
  }
  return acc;
}

TEST(lanes, four_bit_tiles_equal_their_scalar_form) {
  if (!isa_supported(isa::avx512_vnni)) GTEST_SKIP() << "this CPU (or build) has no avx512_vnni path";
  const dot_kernels& k = *kernels_for(isa::avx512_vnni);
  const dot_kernels& scalar = *kernels_for(isa::scalar);
  const size_t rows = 37;  // two whole 16-row tiles and 5 rows
  for (size_t cols : {64u, 100u, 2112u}) {
    const std::vector<float> w = random_values(rows * cols, 70 + static_cast<uint32_t>(cols));
    const std::vector<float> x = random_values(13 * cols, 80 + static_cast<uint32_t>(cols));
    for (weight_format f : {weight_format::q4_0, weight_format::int4_g32, weight_format::int4_g64,
                            weight_format::int4_g128}) {
      SCOPED_TRACE(std::string(weight_format_name(f)) + " cols " + std::to_string(cols));
      const quantized_matrix m = quantize_matrix(f, w.data(), rows, cols);
      for (size_t batch : {1u, 3u, 8u, 13u}) {
        std::vector<block_q8_0> xq(activation_blocks(f, cols, batch));
        prepare_activations(k, f, x.data(), batch, cols, xq.data());
        std::vector<float> y(batch * rows), y_split(batch * rows), y_ref(batch * rows);
        matmul_rows(k, m.view(), x.data(), xq.data(), batch, y.data(), rows, 0, rows);
        matmul_rows(k, m.view(), x.data(), xq.data(), batch, y_split.data(), rows, 0, 7);  // splits inside tiles
        matmul_rows(k, m.view(), x.data(), xq.data(), batch, y_split.data(), rows, 7, rows);
        matmul_rows(scalar, m.view(), x.data(), xq.data(), batch, y_ref.data(), rows, 0, rows);
        EXPECT_EQ(y, y_split) << "batch " << batch;
        const size_t nb = q::q8_0_blocks(cols);
        for (size_t b = 0; b < batch; ++b) {
          double xn = 0;
          for (size_t c = 0; c < cols; ++c) xn += double(x[b * cols + c]) * x[b * cols + c];
          for (size_t r = 0; r < rows; ++r) {
            EXPECT_EQ(y[b * rows + r], lanes_reference(m, r, xq.data() + b * nb)) << "batch " << batch << " b " << b << " r " << r;
            double wn = 0;
            for (size_t c = 0; c < cols; ++c) wn += double(w[r * cols + c]) * w[r * cols + c];
            EXPECT_NEAR(y[b * rows + r], y_ref[b * rows + r], 1e-5 * std::sqrt(wn * xn) + 1e-6) << "b " << b << " r " << r;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace moat::cpu::quant

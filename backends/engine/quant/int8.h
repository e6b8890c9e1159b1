// 8-bit weight formats, each with quantize, dequantize and a scalar reference dot product.
//
//  - Q8_0 (the GGUF layout, so Q8_0 tensors map without conversion): blocks of 32 values, each
//    block an fp16 scale d and 32 int8 q, value = d * q, d = absmax / 127. Also the format
//    activations are quantized to for the integer dot products of every weight format.
//  - int8 per output channel: a [rows, cols] matrix of int8 and one fp32 scale per row
//    (symmetric, scale = row absmax / 127).
//
//   std::vector<block_q8_0> w(q8_0_blocks(n));
//   quantize_q8_0(x, n, w.data());                 // n need not be a multiple of 32
//   float y = dot_q8_0_f32(w.data(), act, n);      // reference: sum_i dequant(w)_i * act_i
//
//   int8_matrix m = quantize_int8_channel(weights, rows, cols);   // weights: [rows, cols]
//   float y0 = dot_int8_f32(m.row(0), m.scales[0], act, cols);
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace moat::engine::quant {

inline constexpr size_t q8_0_block = 32;

// GGUF block_q8_0: 34 bytes, no padding.
struct block_q8_0 {
  uint16_t d;  // fp16 scale
  int8_t qs[q8_0_block];
};
static_assert(sizeof(block_q8_0) == 34);

inline constexpr size_t q8_0_blocks(size_t n) { return (n + q8_0_block - 1) / q8_0_block; }

// x: n floats -> out: q8_0_blocks(n) blocks. A partial last block is padded with zeros.
void quantize_q8_0(const float* x, size_t n, block_q8_0* out);
// blocks -> out: n floats.
void dequantize_q8_0(const block_q8_0* blocks, size_t n, float* out);
// Reference dot products over n values: against float activations, and against activations
// quantized with quantize_q8_0 (the integer path the SIMD kernels take).
float dot_q8_0_f32(const block_q8_0* w, const float* x, size_t n);
float dot_q8_0_q8_0(const block_q8_0* w, const block_q8_0* a, size_t n);

// Per-output-channel int8: q is [rows, cols] row-major, scales is [rows].
struct int8_matrix {
  size_t rows = 0;
  size_t cols = 0;
  std::vector<int8_t> q;
  std::vector<float> scales;
  const int8_t* row(size_t r) const { return q.data() + r * cols; }
};

// One row: x [n] -> q [n] and its scale.
void quantize_int8_row(const float* x, size_t n, int8_t* q, float* scale);
int8_matrix quantize_int8_channel(const float* w, size_t rows, size_t cols);
// out: [rows, cols]
void dequantize_int8_channel(const int8_matrix& m, float* out);
float dot_int8_f32(const int8_t* q, float scale, const float* x, size_t n);
// a: q8_0_blocks(n) blocks of quantized activations.
float dot_int8_q8_0(const int8_t* q, float scale, const block_q8_0* a, size_t n);

}  // namespace moat::engine::quant

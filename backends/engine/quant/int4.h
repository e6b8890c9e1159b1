// 4-bit weight formats, each with quantize, dequantize and a scalar reference dot product.
//
//  - Q4_0 (the GGUF layout): blocks of 32 values, an fp16 scale d and 16 bytes; byte j holds
//    value j in its low nibble and value j + 16 in its high nibble, stored as q + 8 (q in
//    -8..7); value = d * (nibble - 8), d = (the value of largest magnitude) / -8.
//  - int4 groups (moat's own): a row of `cols` values in groups of 32, 64 or 128, one fp32
//    scale per group. Symmetric as Q4_0 is. Each group is stored as group/32 sub-blocks of 16
//    bytes in Q4_0's nibble order, so one SIMD inner loop serves both formats. A row takes
//    int4_row_bytes(cols, group) bytes and int4_row_groups(cols, group) scales; a partial last
//    group is padded with zeros.
//
//   std::vector<uint8_t> q(int4_row_bytes(n, 64));
//   std::vector<float> s(int4_row_groups(n, 64));
//   quantize_int4_row(x, n, 64, q.data(), s.data());
//   float y = dot_int4_f32(q.data(), s.data(), 64, act, n);
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/quant/int8.h"

namespace moat::engine::quant {

inline constexpr size_t q4_0_block = 32;

// GGUF block_q4_0: 18 bytes, no padding.
struct block_q4_0 {
  uint16_t d;  // fp16 scale
  uint8_t qs[q4_0_block / 2];
};
static_assert(sizeof(block_q4_0) == 18);

inline constexpr size_t q4_0_blocks(size_t n) { return (n + q4_0_block - 1) / q4_0_block; }

// x: n floats -> q4_0_blocks(n) blocks (a partial last block padded with zeros).
void quantize_q4_0(const float* x, size_t n, block_q4_0* out);
void dequantize_q4_0(const block_q4_0* blocks, size_t n, float* out);
float dot_q4_0_f32(const block_q4_0* w, const float* x, size_t n);
// a: activations quantized with quantize_q8_0, q8_0_blocks(n) blocks.
float dot_q4_0_q8_0(const block_q4_0* w, const block_q8_0* a, size_t n);

inline constexpr bool int4_group_valid(size_t group) { return group == 32 || group == 64 || group == 128; }
inline constexpr size_t int4_row_groups(size_t cols, size_t group) { return (cols + group - 1) / group; }
inline constexpr size_t int4_row_bytes(size_t cols, size_t group) { return int4_row_groups(cols, group) * group / 2; }

// One row of n values. Throws std::invalid_argument for a group other than 32/64/128.
void quantize_int4_row(const float* x, size_t n, size_t group, uint8_t* q, float* scales);
void dequantize_int4_row(const uint8_t* q, const float* scales, size_t group, size_t n, float* out);
float dot_int4_f32(const uint8_t* q, const float* scales, size_t group, const float* x, size_t n);
float dot_int4_q8_0(const uint8_t* q, const float* scales, size_t group, const block_q8_0* a, size_t n);

// The 4-bit value (0..15) of element i of a run of Q4_0-ordered sub-blocks.
inline unsigned q4_nibble(const uint8_t* sub_blocks, size_t i) {
  const uint8_t byte = sub_blocks[(i / 32) * 16 + (i % 16)];
  return (i % 32) < 16 ? (byte & 0x0fu) : (byte >> 4);
}

}  // namespace moat::engine::quant

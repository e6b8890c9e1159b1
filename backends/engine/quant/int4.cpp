#include "engine/quant/int4.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "engine/quant/fp16.h"

namespace moat::engine::quant {
namespace {

// Quantizes len (<= 32 * sub_blocks) values to Q4_0-ordered nibbles with scale d: the value of
// largest magnitude maps to -8 so the full range -8..7 is used (llama.cpp's choice).
float quantize_sub_blocks(const float* x, size_t len, size_t sub_blocks, uint8_t* q) {
  float amax = 0.0f;
  float max = 0.0f;
  for (size_t i = 0; i < len; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (size_t s = 0; s < sub_blocks; ++s) {
    for (size_t j = 0; j < 16; ++j) {
      const size_t i0 = s * 32 + j;
      const size_t i1 = i0 + 16;
      const float x0 = i0 < len ? x[i0] * id : 0.0f;
      const float x1 = i1 < len ? x[i1] * id : 0.0f;
      // + 8.5 then truncation: round half up into 0..16, clamped to 15.
      const auto n0 = static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x0 + 8.5f))));
      const auto n1 = static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x1 + 8.5f))));
      q[s * 16 + j] = static_cast<uint8_t>(n0 | (n1 << 4));
    }
  }
  return d;
}

void check_group(size_t group) {
  if (!int4_group_valid(group)) throw std::invalid_argument("int4 group size must be 32, 64 or 128");
}

}  // namespace

void quantize_q4_0(const float* x, size_t n, block_q4_0* out) {
  for (size_t b = 0; b < q4_0_blocks(n); ++b) {
    const size_t start = b * q4_0_block;
    out[b].d = fp32_to_fp16(quantize_sub_blocks(x + start, std::min(q4_0_block, n - start), 1, out[b].qs));
  }
}

void dequantize_q4_0(const block_q4_0* blocks, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const block_q4_0& b = blocks[i / q4_0_block];
    out[i] = fp16_to_fp32(b.d) * (static_cast<float>(q4_nibble(b.qs, i % q4_0_block)) - 8.0f);
  }
}

float dot_q4_0_f32(const block_q4_0* w, const float* x, size_t n) {
  double sum = 0.0;
  for (size_t b = 0; b < q4_0_blocks(n); ++b) {
    const size_t len = std::min(q4_0_block, n - b * q4_0_block);
    double block = 0.0;
    for (size_t i = 0; i < len; ++i) {
      block += (static_cast<double>(q4_nibble(w[b].qs, i)) - 8.0) * x[b * q4_0_block + i];
    }
    sum += block * fp16_to_fp32(w[b].d);
  }
  return static_cast<float>(sum);
}

float dot_q4_0_q8_0(const block_q4_0* w, const block_q8_0* a, size_t n) {
  double sum = 0.0;
  for (size_t b = 0; b < q4_0_blocks(n); ++b) {
    // The activation padding is zero, so whole blocks can be summed.
    int32_t isum = 0;
    for (size_t i = 0; i < q4_0_block; ++i) isum += (static_cast<int32_t>(q4_nibble(w[b].qs, i)) - 8) * a[b].qs[i];
    sum += static_cast<double>(isum) * fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d);
  }
  return static_cast<float>(sum);
}

void quantize_int4_row(const float* x, size_t n, size_t group, uint8_t* q, float* scales) {
  check_group(group);
  for (size_t g = 0; g < int4_row_groups(n, group); ++g) {
    const size_t start = g * group;
    scales[g] = quantize_sub_blocks(x + start, std::min(group, n - start), group / 32, q + g * group / 2);
  }
}

void dequantize_int4_row(const uint8_t* q, const float* scales, size_t group, size_t n, float* out) {
  check_group(group);
  for (size_t i = 0; i < n; ++i) out[i] = scales[i / group] * (static_cast<float>(q4_nibble(q, i)) - 8.0f);
}

float dot_int4_f32(const uint8_t* q, const float* scales, size_t group, const float* x, size_t n) {
  check_group(group);
  double sum = 0.0;
  for (size_t g = 0; g < int4_row_groups(n, group); ++g) {
    const size_t len = std::min(group, n - g * group);
    double acc = 0.0;
    for (size_t i = 0; i < len; ++i) {
      acc += (static_cast<double>(q4_nibble(q + g * group / 2, i)) - 8.0) * x[g * group + i];
    }
    sum += acc * scales[g];
  }
  return static_cast<float>(sum);
}

float dot_int4_q8_0(const uint8_t* q, const float* scales, size_t group, const block_q8_0* a, size_t n) {
  check_group(group);
  double sum = 0.0;
  // Each 32-value sub-block lines up with one activation block; a sub-block past n has zero
  // activations, one inside a group's zero padding has zero weights.
  for (size_t b = 0; b < q8_0_blocks(n); ++b) {
    int32_t isum = 0;
    for (size_t i = 0; i < 32; ++i) isum += (static_cast<int32_t>(q4_nibble(q + b * 16, i)) - 8) * a[b].qs[i];
    sum += static_cast<double>(isum) * fp16_to_fp32(a[b].d) * scales[(b * 32) / group];
  }
  return static_cast<float>(sum);
}

}  // namespace moat::engine::quant

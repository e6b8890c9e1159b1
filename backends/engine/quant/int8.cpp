#include "engine/quant/int8.h"

#include <algorithm>
#include <cmath>

#include "engine/quant/fp16.h"

namespace moat::engine::quant {

void quantize_q8_0(const float* x, size_t n, block_q8_0* out) {
  for (size_t b = 0; b < q8_0_blocks(n); ++b) {
    const size_t start = b * q8_0_block;
    const size_t len = std::min(q8_0_block, n - start);
    float amax = 0.0f;
    for (size_t i = 0; i < len; ++i) amax = std::max(amax, std::fabs(x[start + i]));
    // As llama.cpp does: the scale is rounded to fp16 for storage, but the values are divided
    // by the unrounded one.
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = fp32_to_fp16(d);
    for (size_t i = 0; i < q8_0_block; ++i) {
      out[b].qs[i] = i < len ? static_cast<int8_t>(std::lround(x[start + i] * id)) : 0;
    }
  }
}

void dequantize_q8_0(const block_q8_0* blocks, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const block_q8_0& b = blocks[i / q8_0_block];
    out[i] = fp16_to_fp32(b.d) * static_cast<float>(b.qs[i % q8_0_block]);
  }
}

float dot_q8_0_f32(const block_q8_0* w, const float* x, size_t n) {
  double sum = 0.0;
  for (size_t b = 0; b < q8_0_blocks(n); ++b) {
    const size_t len = std::min(q8_0_block, n - b * q8_0_block);
    double block = 0.0;
    for (size_t i = 0; i < len; ++i) block += static_cast<double>(w[b].qs[i]) * x[b * q8_0_block + i];
    sum += block * fp16_to_fp32(w[b].d);
  }
  return static_cast<float>(sum);
}

float dot_q8_0_q8_0(const block_q8_0* w, const block_q8_0* a, size_t n) {
  double sum = 0.0;
  for (size_t b = 0; b < q8_0_blocks(n); ++b) {
    int32_t isum = 0;  // padding in either operand is zero, so whole blocks are summed
    for (size_t i = 0; i < q8_0_block; ++i) isum += int32_t{w[b].qs[i]} * int32_t{a[b].qs[i]};
    sum += static_cast<double>(isum) * fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d);
  }
  return static_cast<float>(sum);
}

namespace {

// std::clamp(std::lround(v), -127, 127), without the library call that kept the loop scalar:
// clamp first, then round half away from zero by hand (v - trunc(v) is exact for |v| <= 127).
// NaN gives -127, as lround's LONG_MIN clamped did.
inline int8_t round_clamp_127(float v) {
  float c = v > -127.0f ? v : -127.0f;  // NaN fails the comparison: -127
  c = c < 127.0f ? c : 127.0f;
  int t = static_cast<int>(c);
  const float frac = c - static_cast<float>(t);
  t += (frac >= 0.5f ? 1 : 0) - (frac <= -0.5f ? 1 : 0);
  return static_cast<int8_t>(t);
}

}  // namespace

void quantize_int8_row(const float* x, size_t n, int8_t* q, float* scale) {
  float amax = 0.0f;
  for (size_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (size_t i = 0; i < n; ++i) q[i] = round_clamp_127(x[i] * id);
  *scale = d;
}

int8_matrix quantize_int8_channel(const float* w, size_t rows, size_t cols) {
  int8_matrix m;
  m.rows = rows;
  m.cols = cols;
  m.q.resize(rows * cols);
  m.scales.resize(rows);
  for (size_t r = 0; r < rows; ++r) quantize_int8_row(w + r * cols, cols, m.q.data() + r * cols, &m.scales[r]);
  return m;
}

void dequantize_int8_channel(const int8_matrix& m, float* out) {
  for (size_t r = 0; r < m.rows; ++r) {
    for (size_t c = 0; c < m.cols; ++c) out[r * m.cols + c] = m.scales[r] * static_cast<float>(m.q[r * m.cols + c]);
  }
}

float dot_int8_f32(const int8_t* q, float scale, const float* x, size_t n) {
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += static_cast<double>(q[i]) * x[i];
  return static_cast<float>(sum * scale);
}

float dot_int8_q8_0(const int8_t* q, float scale, const block_q8_0* a, size_t n) {
  double sum = 0.0;
  for (size_t b = 0; b < q8_0_blocks(n); ++b) {
    const size_t len = std::min(q8_0_block, n - b * q8_0_block);
    int32_t isum = 0;
    for (size_t i = 0; i < len; ++i) isum += int32_t{q[b * q8_0_block + i]} * int32_t{a[b].qs[i]};
    sum += static_cast<double>(isum) * fp16_to_fp32(a[b].d);
  }
  return static_cast<float>(sum * scale);
}

}  // namespace moat::engine::quant

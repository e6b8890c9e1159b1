#include "cpu/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/dot_lanes.h"

namespace moat::cpu {

// dot, dot_i8 and axpy are compiled twice (AVX2 and baseline) like matmul_rows: attention calls
// them once per (position, head). Same lanes, no FMA: both clones give the same bits.
__attribute__((target_clones("avx2", "default"))) float dot(const float* a, const float* b,
                                                            int64_t n) {
  float out;
  dot_lanes<1>(a, 0, b, n, &out, 0);
  return out;
}

__attribute__((target_clones("avx2", "default"))) float dot_i8(const float* a, const int8_t* b,
                                                               int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * static_cast<float>(b[i + k]);
  }
  for (int64_t j = i, k = 0; j < n; ++j, ++k) acc[k] += a[j] * static_cast<float>(b[j]);
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

__attribute__((target_clones("avx2", "default"))) void axpy(float a, const float* x, float* y,
                                                            int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

__attribute__((target_clones("avx2", "default"))) void axpy_i8(float a, const int8_t* x, float* y,
                                                               int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * static_cast<float>(x[i]);
}

// Compiled twice (AVX2 and baseline), chosen at load time. No FMA (the AVX2 clone's target has
// none, and CMakeLists.txt sets -ffp-contract=off), so both clones round identically.
__attribute__((target_clones("avx2", "default"))) void matmul_rows(const engine::tensor& w,
                                                                   const float* x, int64_t n_rows,
                                                                   float* y, int64_t y_stride,
                                                                   int64_t o_begin, int64_t o_end,
                                                                   float* scratch) {
  const int64_t in = w.cols();
  constexpr int tile = 4;
  for (int64_t o = o_begin; o < o_end; ++o) {
    const float* wr;
    if (w.type == engine::dtype::f32) {
      wr = reinterpret_cast<const float*>(w.row_ptr(o));
    } else {
      w.row_to_f32(o, scratch);
      wr = scratch;
    }
    int64_t t = 0;
    for (; t + tile <= n_rows; t += tile)
      dot_lanes<tile>(x + t * in, in, wr, in, y + t * y_stride + o, y_stride);
    for (; t < n_rows; ++t) dot_lanes<1>(x + t * in, in, wr, in, y + t * y_stride + o, y_stride);
  }
}

void rmsnorm(const float* x, const float* weight, float eps, int64_t n, float* out) {
  float ss = 0.0f;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * scale);
}

void rmsnorm_rows(const float* x, const float* weight, float eps, int64_t n, int64_t rows,
                  float* out) {
  int64_t r = 0;
  for (; r + 8 <= rows; r += 8) {
    const float* xr = x + r * n;
    float ss[8] = {};
    for (int64_t i = 0; i < n; ++i) {
      for (int k = 0; k < 8; ++k) ss[k] += xr[k * n + i] * xr[k * n + i];
    }
    for (int k = 0; k < 8; ++k) {
      const float scale = 1.0f / std::sqrt(ss[k] / static_cast<float>(n) + eps);
      const float* xk = xr + k * n;
      float* ok = out + (r + k) * n;
      for (int64_t i = 0; i < n; ++i) ok[i] = weight[i] * (xk[i] * scale);
    }
  }
  for (; r < rows; ++r) rmsnorm(x + r * n, weight, eps, n, out + r * n);
}

void rope_angles(int32_t head_dim, int32_t pos, const float* inv_freq, float* cos_sin) {
  const int32_t half = head_dim / 2;
  for (int32_t i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    cos_sin[i] = std::cos(angle);
    cos_sin[half + i] = std::sin(angle);
  }
}

void rope_rotate(float* head, int32_t head_dim, const float* cos_sin, engine::rope_style style) {
  const int32_t half = head_dim / 2;
  for (int32_t i = 0; i < half; ++i) {
    const float c = cos_sin[i], s = cos_sin[half + i];
    float* a;
    float* b;
    if (style == engine::rope_style::rotate_half) {
      a = head + i;
      b = head + i + half;
    } else {
      a = head + 2 * i;
      b = head + 2 * i + 1;
    }
    const float x0 = *a, x1 = *b;
    *a = x0 * c - x1 * s;
    *b = x0 * s + x1 * c;
  }
}

void rope(float* head, int32_t head_dim, int32_t pos, const float* inv_freq,
          engine::rope_style style) {
  float cos_sin[512];  // head_dim <= 512 for every model the loaders accept; larger heads go the
                       // slow way
  if (head_dim <= 512) {
    rope_angles(head_dim, pos, inv_freq, cos_sin);
    rope_rotate(head, head_dim, cos_sin, style);
    return;
  }
  std::vector<float> big(static_cast<size_t>(head_dim));
  rope_angles(head_dim, pos, inv_freq, big.data());
  rope_rotate(head, head_dim, big.data(), style);
}

void softmax(float* x, int64_t n) {
  const float mx = *std::max_element(x, x + n);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

}  // namespace moat::cpu

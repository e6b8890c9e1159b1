#include "cpu/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace moat::cpu {

float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  }
  for (int k = 0; i < n; ++i, ++k) acc[k] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void matmul_rows(const engine::tensor& w, const float* x, int64_t n_rows, float* y, int64_t y_stride,
                 int64_t o_begin, int64_t o_end, float* scratch) {
  const int64_t in = w.cols();
  for (int64_t o = o_begin; o < o_end; ++o) {
    const float* wr;
    if (w.type == engine::dtype::f32) {
      wr = reinterpret_cast<const float*>(w.row_ptr(o));
    } else {
      w.row_to_f32(o, scratch);
      wr = scratch;
    }
    for (int64_t t = 0; t < n_rows; ++t) y[t * y_stride + o] = dot(x + t * in, wr, in);
  }
}

void rmsnorm(const float* x, const float* weight, float eps, int64_t n, float* out) {
  float ss = 0.0f;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * scale);
}

void rope(float* head, int32_t head_dim, int32_t pos, const float* inv_freq, engine::rope_style style) {
  const int32_t half = head_dim / 2;
  for (int32_t i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    const float c = std::cos(angle), s = std::sin(angle);
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

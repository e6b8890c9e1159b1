#include "cpu/f16_matmul.h"

#include <cstring>

#include "cpu/dot_lanes.h"
#include "engine/tensor.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define MOAT_F16_TARGET __attribute__((target("avx2,f16c")))
#endif

namespace moat::cpu {

#if defined(__x86_64__)

namespace {

// M weight rows x R tokens: y[r][m] = w[m] . x[r]. One accumulator (8 lanes) per output, so the
// M * R add chains are independent (one chain per output would wait on the add latency: a
// 128-long row is only 16 steps). Lane k gets x[i + k] * w[i + k] for i = 0, 8, ..., exactly
// as dot_lanes (dot_lanes.h): acc + x * w per lane, the product rounded before the add (no FMA).
template <int M, int R>
MOAT_F16_TARGET inline void tile(const uint16_t* w, int64_t cols, const float* x, int64_t x_stride,
                                 float* y, int64_t y_stride) {
  __m256 acc[M][R];
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < R; ++r) acc[m][r] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= cols; i += 8) {
    __m256 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x + r * x_stride + i);
    for (int m = 0; m < M; ++m) {
      const __m256 wv =
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + m * cols + i)));
      for (int r = 0; r < R; ++r) acc[m][r] = _mm256_add_ps(acc[m][r], _mm256_mul_ps(xv[r], wv));
    }
  }
  for (int m = 0; m < M; ++m) {
    for (int r = 0; r < R; ++r) {
      alignas(32) float a[8];
      _mm256_store_ps(a, acc[m][r]);
      // A row length that is not a multiple of 8: the rest go to lanes 0, 1, ... as in dot_lanes.
      for (int64_t j = i, k = 0; j < cols; ++j, ++k)
        a[k] += x[r * x_stride + j] * engine::f16_to_f32(w[m * cols + j]);
      y[r * y_stride + m] = lane_tree(a);
    }
  }
}

// Rows [o_begin, o_end) of W against R tokens: M rows at a time while they last, then one.
template <int M, int R>
MOAT_F16_TARGET void rows_for_tokens(const uint16_t* w, int64_t cols, const float* x, float* y,
                                     int64_t y_stride, int64_t o_begin, int64_t o_end) {
  int64_t o = o_begin;
  for (; o + M <= o_end; o += M) tile<M, R>(w + o * cols, cols, x, cols, y + o, y_stride);
  for (; o < o_end; ++o) tile<1, R>(w + o * cols, cols, x, cols, y + o, y_stride);
}

}  // namespace

bool f16_matmul_available() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  return ok;
}

MOAT_F16_TARGET void f16_matmul_rows(const uint16_t* w, int64_t cols, const float* x,
                                     int64_t n_rows, float* y, int64_t y_stride, int64_t o_begin,
                                     int64_t o_end) {
  // Tokens in tiles of 4 (8 accumulators with 2 weight rows); a lone token takes 8 weight rows
  // at a time, the decode-1 case, where the head is the largest matrix of a small model.
  // Weight rows of a chunk (a few hundred of the head, tens of KiB) stay in L1/L2 across tiles.
  int64_t t = 0;
  for (; t + 4 <= n_rows; t += 4)
    rows_for_tokens<2, 4>(w, cols, x + t * cols, y + t * y_stride, y_stride, o_begin, o_end);
  const float* xt = x + t * cols;
  float* yt = y + t * y_stride;
  switch (n_rows - t) {
    case 3:
      rows_for_tokens<2, 3>(w, cols, xt, yt, y_stride, o_begin, o_end);
      break;
    case 2:
      rows_for_tokens<4, 2>(w, cols, xt, yt, y_stride, o_begin, o_end);
      break;
    case 1:
      rows_for_tokens<8, 1>(w, cols, xt, yt, y_stride, o_begin, o_end);
      break;
    default:
      break;
  }
}

#else  // no x86: the same sums, one output at a time (callers normally keep matmul_rows)

bool f16_matmul_available() {
  return false;
}

void f16_matmul_rows(const uint16_t* w, int64_t cols, const float* x, int64_t n_rows, float* y,
                     int64_t y_stride, int64_t o_begin, int64_t o_end) {
  for (int64_t t = 0; t < n_rows; ++t) {
    for (int64_t o = o_begin; o < o_end; ++o) {
      float a[8] = {};
      for (int64_t j = 0; j < cols; ++j)
        a[j % 8] += x[t * cols + j] * engine::f16_to_f32(w[o * cols + j]);
      y[t * y_stride + o] = lane_tree(a);
    }
  }
}

#endif

}  // namespace moat::cpu

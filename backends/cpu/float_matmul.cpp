#include "cpu/float_matmul.h"

#include "cpu/dot_lanes.h"
#include "engine/tensor.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define MOAT_FLOAT_TARGET __attribute__((target("avx2,f16c")))
#define MOAT_FLOAT512_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,avx2,f16c")))
#endif

namespace moat::cpu {

namespace {

inline float to_f32(float v) {
  return v;
}
inline float to_f32(uint16_t v) {
  return engine::f16_to_f32(v);
}

}  // namespace

#if defined(__x86_64__)

namespace {

MOAT_FLOAT_TARGET inline __m256 load8(const float* p) {
  return _mm256_loadu_ps(p);
}
MOAT_FLOAT_TARGET inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// M weight rows x R tokens: y[r][m] = w[m] . x[r]. One accumulator (8 lanes) per output, so the
// M * R add chains are independent. Lane k gets x[i + k] * w[i + k] for i = 0, 8, ..., exactly
// as dot_lanes: acc + x * w per lane, the product rounded before the add (no FMA).
template <int M, int R, class W>
MOAT_FLOAT_TARGET inline void tile(const W* w, int64_t cols, const float* x, int64_t x_stride,
                                   float* y, int64_t y_stride) {
  __m256 acc[M][R];
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < R; ++r) acc[m][r] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= cols; i += 8) {
    __m256 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x + r * x_stride + i);
    for (int m = 0; m < M; ++m) {
      const __m256 wv = load8(w + m * cols + i);
      for (int r = 0; r < R; ++r) acc[m][r] = _mm256_add_ps(acc[m][r], _mm256_mul_ps(xv[r], wv));
    }
  }
  for (int m = 0; m < M; ++m) {
    for (int r = 0; r < R; ++r) {
      alignas(32) float a[8];
      _mm256_store_ps(a, acc[m][r]);
      // A row length that is not a multiple of 8: the rest go to lanes 0, 1, ... as in dot_lanes.
      for (int64_t j = i, k = 0; j < cols; ++j, ++k)
        a[k] += x[r * x_stride + j] * to_f32(w[m * cols + j]);
      y[r * y_stride + m] = lane_tree(a);
    }
  }
}

// Rows [o_begin, o_end) of W against one token, 8 weight rows at a time while they last (decode
// at batch 1: 8 add chains in flight).
template <class W>
MOAT_FLOAT_TARGET void rows_one_token(const W* w, int64_t cols, const float* x, float* y,
                                      int64_t o_begin, int64_t o_end) {
  int64_t o = o_begin;
  for (; o + 8 <= o_end; o += 8) tile<8, 1>(w + o * cols, cols, x, cols, y + o, 0);
  for (; o < o_end; ++o) tile<1, 1>(w + o * cols, cols, x, cols, y + o, 0);
}

// M weight rows against every token, 4 tokens per tile: the M rows (2 x 8 KiB for a 2048-wide
// f32 row) stay in L1 while all the tokens pass, so a weight is read from memory once per call
// however many tokens there are.
template <int M, class W>
MOAT_FLOAT_TARGET void rows_all_tokens(const W* w, int64_t cols, const float* x, int64_t n_rows,
                                       float* y, int64_t y_stride) {
  int64_t t = 0;
  for (; t + 4 <= n_rows; t += 4)
    tile<M, 4>(w, cols, x + t * cols, cols, y + t * y_stride, y_stride);
  const float* xt = x + t * cols;
  float* yt = y + t * y_stride;
  switch (n_rows - t) {
    case 3:
      tile<M, 3>(w, cols, xt, cols, yt, y_stride);
      break;
    case 2:
      tile<M, 2>(w, cols, xt, cols, yt, y_stride);
      break;
    case 1:
      tile<M, 1>(w, cols, xt, cols, yt, y_stride);
      break;
    default:
      break;
  }
}

template <class W>
MOAT_FLOAT_TARGET void matmul_tiles(const W* w, int64_t cols, const float* x, int64_t n_rows,
                                    float* y, int64_t y_stride, int64_t o_begin, int64_t o_end) {
  if (n_rows == 1) {
    rows_one_token(w, cols, x, y, o_begin, o_end);
    return;
  }
  // Two weight rows x 4 tokens: 8 accumulators, 4 activation and 1 weight register of 16.
  int64_t o = o_begin;
  for (; o + 2 <= o_end; o += 2) rows_all_tokens<2>(w + o * cols, cols, x, n_rows, y + o, y_stride);
  if (o < o_end) rows_all_tokens<1>(w + o * cols, cols, x, n_rows, y + o, y_stride);
}

// AVX-512: two weight rows per register, row 2p in the low 8 lanes and row 2p + 1 in the high 8,
// against the token's 8 activations repeated in both halves. Each half is exactly the AVX2
// tile's 8 lanes (the same products, the same adds, no FMA), so the bits do not change; a
// 512-bit op does the work of two 256-bit ones.
MOAT_FLOAT512_TARGET inline __m512 load_pair(const float* a, const float* b) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(a)), _mm256_loadu_ps(b), 1);
}
MOAT_FLOAT512_TARGET inline __m512 load_pair(const uint16_t* a, const uint16_t* b) {
  const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
  const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
  return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
}

// P row pairs (2P weight rows) x R tokens.
template <int P, int R, class W>
MOAT_FLOAT512_TARGET inline void tile512(const W* w, int64_t cols, const float* x, int64_t x_stride,
                                         float* y, int64_t y_stride) {
  __m512 acc[P][R];
  for (int p = 0; p < P; ++p)
    for (int r = 0; r < R; ++r) acc[p][r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= cols; i += 8) {
    __m512 xv[R];
    for (int r = 0; r < R; ++r)
      xv[r] = _mm512_broadcast_f32x8(_mm256_loadu_ps(x + r * x_stride + i));
    for (int p = 0; p < P; ++p) {
      const __m512 wv = load_pair(w + 2 * p * cols + i, w + (2 * p + 1) * cols + i);
      for (int r = 0; r < R; ++r) acc[p][r] = _mm512_add_ps(acc[p][r], _mm512_mul_ps(xv[r], wv));
    }
  }
  for (int p = 0; p < P; ++p) {
    for (int r = 0; r < R; ++r) {
      alignas(64) float a[16];
      _mm512_store_ps(a, acc[p][r]);
      for (int h = 0; h < 2; ++h) {
        const int64_t m = 2 * p + h;
        float* lanes = a + 8 * h;
        for (int64_t j = i, k = 0; j < cols; ++j, ++k)
          lanes[k] += x[r * x_stride + j] * to_f32(w[m * cols + j]);
        y[r * y_stride + m] = lane_tree(lanes);
      }
    }
  }
}

// 2P weight rows against every token, 4 tokens per tile.
template <int P, class W>
MOAT_FLOAT512_TARGET void rows_all_tokens512(const W* w, int64_t cols, const float* x,
                                             int64_t n_rows, float* y, int64_t y_stride) {
  int64_t t = 0;
  for (; t + 4 <= n_rows; t += 4)
    tile512<P, 4>(w, cols, x + t * cols, cols, y + t * y_stride, y_stride);
  const float* xt = x + t * cols;
  float* yt = y + t * y_stride;
  switch (n_rows - t) {
    case 3:
      tile512<P, 3>(w, cols, xt, cols, yt, y_stride);
      break;
    case 2:
      tile512<P, 2>(w, cols, xt, cols, yt, y_stride);
      break;
    case 1:
      tile512<P, 1>(w, cols, xt, cols, yt, y_stride);
      break;
    default:
      break;
  }
}

template <class W>
MOAT_FLOAT512_TARGET void matmul_tiles512(const W* w, int64_t cols, const float* x, int64_t n_rows,
                                          float* y, int64_t y_stride, int64_t o_begin,
                                          int64_t o_end) {
  int64_t o = o_begin;
  if (n_rows == 1) {
    // 16 weight rows at a time: 8 accumulators.
    for (; o + 16 <= o_end; o += 16) tile512<8, 1>(w + o * cols, cols, x, cols, y + o, 0);
  } else {
    // 8 weight rows x 4 tokens: 16 accumulators, 4 activation registers of 32.
    for (; o + 8 <= o_end; o += 8)
      rows_all_tokens512<4>(w + o * cols, cols, x, n_rows, y + o, y_stride);
  }
  for (; o + 2 <= o_end; o += 2)
    rows_all_tokens512<1>(w + o * cols, cols, x, n_rows, y + o, y_stride);
  if (o < o_end) rows_all_tokens<1>(w + o * cols, cols, x, n_rows, y + o, y_stride);
}

template <class W>
void dispatch(float_isa isa, const W* w, int64_t cols, const float* x, int64_t n_rows, float* y,
              int64_t y_stride, int64_t o_begin, int64_t o_end) {
  if (isa == float_isa::avx512) {
    matmul_tiles512(w, cols, x, n_rows, y, y_stride, o_begin, o_end);
  } else {
    matmul_tiles(w, cols, x, n_rows, y, y_stride, o_begin, o_end);
  }
}

}  // namespace

float_isa float_matmul_isa() {
  static const float_isa best = [] {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("f16c")) return float_isa::none;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
      return float_isa::avx512;
    return float_isa::avx2;
  }();
  return best;
}

void f16_matmul_rows(const uint16_t* w, int64_t cols, const float* x, int64_t n_rows, float* y,
                     int64_t y_stride, int64_t o_begin, int64_t o_end, float_isa isa) {
  dispatch(isa, w, cols, x, n_rows, y, y_stride, o_begin, o_end);
}

void f32_matmul_rows(const float* w, int64_t cols, const float* x, int64_t n_rows, float* y,
                     int64_t y_stride, int64_t o_begin, int64_t o_end, float_isa isa) {
  dispatch(isa, w, cols, x, n_rows, y, y_stride, o_begin, o_end);
}

#else  // no x86: the same sums, one output at a time (callers normally keep matmul_rows)

namespace {

template <class W>
void matmul_tiles(const W* w, int64_t cols, const float* x, int64_t n_rows, float* y,
                  int64_t y_stride, int64_t o_begin, int64_t o_end) {
  for (int64_t t = 0; t < n_rows; ++t) {
    for (int64_t o = o_begin; o < o_end; ++o) {
      float a[8] = {};
      for (int64_t j = 0; j < cols; ++j) a[j % 8] += x[t * cols + j] * to_f32(w[o * cols + j]);
      y[t * y_stride + o] = lane_tree(a);
    }
  }
}

}  // namespace

float_isa float_matmul_isa() {
  return float_isa::none;
}

void f16_matmul_rows(const uint16_t* w, int64_t cols, const float* x, int64_t n_rows, float* y,
                     int64_t y_stride, int64_t o_begin, int64_t o_end, float_isa) {
  matmul_tiles(w, cols, x, n_rows, y, y_stride, o_begin, o_end);
}

void f32_matmul_rows(const float* w, int64_t cols, const float* x, int64_t n_rows, float* y,
                     int64_t y_stride, int64_t o_begin, int64_t o_end, float_isa) {
  matmul_tiles(w, cols, x, n_rows, y, y_stride, o_begin, o_end);
}

#endif

}  // namespace moat::cpu

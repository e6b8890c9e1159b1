#include "cpu/attention.h"

#include <algorithm>
#include <cstring>

#include "cpu/dot_lanes.h"
#include "cpu/kernels.h"

namespace moat::cpu {

namespace {

// 8 floats as one value: the compiler emits one AVX register op in the AVX2 clone, two SSE ops
// in the baseline one; elementwise, so the same bits either way.
typedef float v8 __attribute__((vector_size(32)));

// q . K[p] * scale for 8 positions (rows: their K rows of this head), each exactly as
// dot_lanes<1>: lane k of M_p sums q[i + k] K_p[i + k] over i = 0, 8, ... from zero, then the
// tree ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)). The tree runs across positions, 8 at
// a time: level 1 pairs positions (a_k + a_k+4 for two positions per vector), level 2 pairs
// those, level 3 ends with one position per element, in order. hd: a multiple of 8.
__attribute__((always_inline)) inline void scores8(const float* q, int32_t hd,
                                                   const float* const* rows, float scale,
                                                   float* out) {
  typedef int32_t i8v __attribute__((vector_size(32)));
  v8 m[8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) m[j] = v8{};
  for (int32_t i = 0; i < hd; i += 8) {
    v8 qv;
    std::memcpy(&qv, q + i, sizeof(qv));
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      v8 kv;
      std::memcpy(&kv, rows[j] + i, sizeof(kv));
      m[j] += qv * kv;
    }
  }
  const i8v lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
  const i8v even = {0, 2, 4, 6, 8, 10, 12, 14}, odd = {1, 3, 5, 7, 9, 11, 13, 15};
  // c[j]: positions (2j, 2j+1), lanes [a0+a4, a1+a5, a2+a6, a3+a7] of each.
  v8 c[4];
  for (int j = 0; j < 4; ++j)
    c[j] = __builtin_shuffle(m[2 * j], m[2 * j + 1], lo4) +
           __builtin_shuffle(m[2 * j], m[2 * j + 1], hi4);
  // d[j]: positions 4j .. 4j+3, [(a0+a4)+(a1+a5), (a2+a6)+(a3+a7)] of each.
  v8 d[2];
  for (int j = 0; j < 2; ++j)
    d[j] = __builtin_shuffle(c[2 * j], c[2 * j + 1], even) +
           __builtin_shuffle(c[2 * j], c[2 * j + 1], odd);
  const v8 e = __builtin_shuffle(d[0], d[1], even) + __builtin_shuffle(d[0], d[1], odd);
  const v8 scaled = e * scale;
  std::memcpy(out, &scaled, sizeof(scaled));
}

// Slices s0 .. s0 + NA - 1 of out, slice s being elements [8 (s % (hd / 8)), +8) of query head
// s / (hd / 8): each accumulates att[g][p] * V[p] over the positions in order, in a register.
// Always inlined (as scores8): the vectors are then compiled for the calling clone's target.
template <int NA>
__attribute__((always_inline)) inline void av_pass(const paged_kv& kv, const int32_t* table,
                                                   int32_t layer, int32_t kvh, int32_t n,
                                                   const float* att, int64_t att_stride, int32_t s0,
                                                   float* out) {
  const int32_t hd = kv.head_dim(), bs = kv.block_size(), per_head = hd / 8;
  const int64_t stride = kv.kv_dim();
  const float* a[NA];
  int32_t col[NA];
  v8 acc[NA];
#pragma GCC unroll 8
  for (int j = 0; j < NA; ++j) {
    const int32_t g = (s0 + j) / per_head;
    col[j] = (s0 + j) % per_head * 8;
    a[j] = att + g * att_stride;
    acc[j] = v8{};
  }
  for (int32_t p0 = 0; p0 < n; p0 += bs) {
    const float* v = kv.f32_head(table[p0 / bs], layer, 1, kvh);
    const int32_t m = std::min(bs, n - p0);
    for (int32_t o = 0; o < m; ++o, v += stride) {
#pragma GCC unroll 8
      for (int j = 0; j < NA; ++j) {
        v8 vj;
        std::memcpy(&vj, v + col[j], sizeof(vj));
        acc[j] += a[j][p0 + o] * vj;
      }
    }
  }
  for (int j = 0; j < NA; ++j) {
    const int32_t g = (s0 + j) / per_head;
    std::memcpy(out + g * hd + col[j], &acc[j], sizeof(v8));
  }
}

}  // namespace

__attribute__((target_clones("avx2", "default"))) void attend_f32(
    const paged_kv& kv, const int32_t* table, int32_t layer, int32_t kvh, int32_t n, const float* q,
    int32_t group, float scale, float* att, int64_t att_stride, float* out) {
  const int32_t hd = kv.head_dim(), bs = kv.block_size();
  const int64_t stride = kv.kv_dim();  // floats from one position's row to the next in a block
  // Scores: 8 positions at a time where the head is a whole number of vectors, then one by one
  // (each K row loaded once for the whole group).
  int32_t done = 0;
  if (hd % 8 == 0) {
    const float* rows[8];
    int32_t blk = 0, off = 0;  // where position `done + j` lives, walked without a division
    const float* base = kv.f32_head(table[0], layer, 0, kvh);
    for (; done + 8 <= n; done += 8) {
      for (int j = 0; j < 8; ++j) {
        rows[j] = base + off * stride;
        if (++off == bs) {
          off = 0;
          if (done + j + 1 < n) base = kv.f32_head(table[++blk], layer, 0, kvh);
        }
      }
      for (int32_t g = 0; g < group; ++g)
        scores8(q + g * hd, hd, rows, scale, att + g * att_stride + done);
    }
  }
  for (int32_t p0 = done / bs * bs; p0 < n; p0 += bs) {
    const float* k = kv.f32_head(table[p0 / bs], layer, 0, kvh);
    const int32_t m = std::min(bs, n - p0);
    for (int32_t o = 0; o < m; ++o, k += stride) {
      if (p0 + o < done) continue;
      for (int32_t g = 0; g < group; ++g) {
        float s;
        dot_lanes<1>(q + g * hd, 0, k, hd, &s, 0);
        att[g * att_stride + p0 + o] = s * scale;
      }
    }
  }
  for (int32_t g = 0; g < group; ++g) softmax(att + g * att_stride, n);
  // out[g] = sum_p att[g][p] V[p], positions in order (as axpy() per position), element by
  // element from zero, so the bits are axpy's.
  if (hd % 8 == 0) {
    // Vectors of 8 elements of out, up to 8 of them in registers per pass over the positions.
    const int32_t slices = group * (hd / 8);
    for (int32_t s0 = 0; s0 < slices; s0 += 8) {
      const int32_t count = std::min(8, slices - s0);
      switch (count) {
        case 1:
          av_pass<1>(kv, table, layer, kvh, n, att, att_stride, s0, out);
          break;
        case 2:
          av_pass<2>(kv, table, layer, kvh, n, att, att_stride, s0, out);
          break;
        case 3:
          av_pass<3>(kv, table, layer, kvh, n, att, att_stride, s0, out);
          break;
        case 4:
          av_pass<4>(kv, table, layer, kvh, n, att, att_stride, s0, out);
          break;
        case 5:
          av_pass<5>(kv, table, layer, kvh, n, att, att_stride, s0, out);
          break;
        case 6:
          av_pass<6>(kv, table, layer, kvh, n, att, att_stride, s0, out);
          break;
        case 7:
          av_pass<7>(kv, table, layer, kvh, n, att, att_stride, s0, out);
          break;
        default:
          av_pass<8>(kv, table, layer, kvh, n, att, att_stride, s0, out);
          break;
      }
    }
    return;
  }
  std::memset(out, 0, sizeof(float) * static_cast<size_t>(group) * static_cast<size_t>(hd));
  for (int32_t p0 = 0; p0 < n; p0 += bs) {
    const float* v = kv.f32_head(table[p0 / bs], layer, 1, kvh);
    const int32_t m = std::min(bs, n - p0);
    for (int32_t o = 0; o < m; ++o, v += stride) {
      for (int32_t g = 0; g < group; ++g) {
        const float a = att[g * att_stride + p0 + o];
        float* y = out + g * hd;
        for (int32_t i = 0; i < hd; ++i) y[i] += a * v[i];
      }
    }
  }
}

}  // namespace moat::cpu

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

// Slices s0 .. s0 + NA - 1 of out, slice s being elements [8 (s % (hd / 8)), +8) of query head
// s / (hd / 8): each accumulates att[g][p] * V[p] over the positions in order, in a register.
// Always inlined: its vectors are then compiled for the calling clone's target.
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
  // Scores: each K row is loaded once for the whole group.
  for (int32_t p0 = 0; p0 < n; p0 += bs) {
    const float* k = kv.f32_head(table[p0 / bs], layer, 0, kvh);
    const int32_t m = std::min(bs, n - p0);
    for (int32_t o = 0; o < m; ++o, k += stride) {
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

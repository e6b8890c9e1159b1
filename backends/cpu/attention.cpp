#include "cpu/attention.h"

#include <algorithm>
#include <cstring>

#include "cpu/dot_lanes.h"
#include "cpu/kernels.h"

namespace moat::cpu {

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
  // out[g] = sum_p att[g][p] V[p], positions in order (as axpy() per position).
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

// The one summation order of every f32 dot product in the CPU forward pass (dot(), matmul_rows,
// attention, and the F16 kernel's lanes): 8 lanes, lane k sums elements k, k+8, ... (products
// rounded before the add, no FMA), then a fixed tree. Internal to backends/cpu; inline so that
// each kernel's target clone (AVX2 or baseline) compiles it with its own instructions, and the
// bits stay the same whichever clone runs.
//
//   float s;  dot_lanes<1>(q, 0, k, head_dim, &s, 0);   // s = q . k
#pragma once

#include <cstdint>

namespace moat::cpu {

// The tree that ends every dot product: ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)).
inline float lane_tree(const float* a) {
  return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

// R dot products of one weight row w with R rows of x, sharing each load of w. Every output is
// computed exactly as dot() computes it, so tiling never changes a result: a sequence gets the
// same logits whether it shares a tile with others or not.
template <int R>
inline void dot_lanes(const float* x, int64_t x_stride, const float* w, int64_t n, float* out,
                      int64_t out_stride) {
  float acc[R][8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int r = 0; r < R; ++r) {
      for (int k = 0; k < 8; ++k) acc[r][k] += x[r * x_stride + i + k] * w[i + k];
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int64_t j = i, k = 0; j < n; ++j, ++k) acc[r][k] += x[r * x_stride + j] * w[j];
    out[r * out_stride] = lane_tree(acc[r]);
  }
}

}  // namespace moat::cpu

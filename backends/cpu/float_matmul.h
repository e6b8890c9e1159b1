// Matmuls on F32 and F16 weight rows for the AVX2 CPUs the server runs on: several weight rows
// and tokens per tile, one independent 8-lane accumulator per output. Used for the output head
// of the small models, where it is the largest matrix of a step: a tied F32 embedding (the HF
// checkpoints quantized on load keep their head as stored) and a GGUF file's tied F16 embedding
// (converted on the fly with vcvtph2ps instead of one scalar row_to_f32 per row).
//
//   if (float_matmul_available())
//     f16_matmul_rows(w_f16, cols, x, n_rows, y, y_stride, o_begin, o_end);  // y = X W^T, rows [b,
//     e)
//
// Bit-identical to matmul_rows (kernels.h) on the same tensor: f16 -> f32 is exact, and each
// output is summed in dot()'s order (dot_lanes.h: 8 lanes, lane k takes elements k, k+8, ...,
// the same final tree, no FMA). Only the schedule changes: one output per add chain was bound by
// the add latency (a 128-long row is 16 dependent adds), a tile keeps 8 chains in flight.
#pragma once

#include <cstdint>

namespace moat::cpu {

// The kernels this CPU can run (checked once): AVX2 + F16C tiles of 8 lanes, or AVX-512 ones
// with two weight rows per register (each half the same 8 lanes, so the same bits).
enum class float_isa : uint8_t { none, avx2, avx512 };
float_isa float_matmul_isa();
inline bool float_matmul_available() {
  return float_matmul_isa() != float_isa::none;
}

// Y[t][o] = sum_i X[t][i] * W[o][i] for t < n_rows, o in [o_begin, o_end).
// w: [rows][cols] (row stride cols), IEEE half or f32; x: [n_rows][cols]; y: [n_rows][y_stride].
// Call only when float_matmul_available(); isa (tests choose it) at most float_matmul_isa().
void f16_matmul_rows(const uint16_t* w, int64_t cols, const float* x, int64_t n_rows, float* y,
                     int64_t y_stride, int64_t o_begin, int64_t o_end,
                     float_isa isa = float_matmul_isa());
void f32_matmul_rows(const float* w, int64_t cols, const float* x, int64_t n_rows, float* y,
                     int64_t y_stride, int64_t o_begin, int64_t o_end,
                     float_isa isa = float_matmul_isa());

}  // namespace moat::cpu

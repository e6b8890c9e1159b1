// Matmul on F16 weight rows (a GGUF file's tied F16 token embedding used as the output head),
// converted on the fly with F16C instead of one scalar row_to_f32 per row: the head of a small
// model is most of a decode step, and the scalar conversion was most of the head.
//
//   if (f16_matmul_available())
//     f16_matmul_rows(w_f16, cols, x, n_rows, y, y_stride, o_begin, o_end);  // y = X W^T, rows [b,
//     e)
//
// Bit-identical to matmul_rows (kernels.h) on the same tensor: f16 -> f32 is exact, and each
// output is summed in dot()'s order (8 lanes, lane k takes elements k, k+8, ..., the same final
// tree, no FMA). Only the schedule changes: several weight rows and tokens share each load.
#pragma once

#include <cstdint>

namespace moat::cpu {

// True when the CPU has AVX2 and F16C (checked once).
bool f16_matmul_available();

// Y[t][o] = sum_i X[t][i] * W[o][i] for t < n_rows, o in [o_begin, o_end).
// w: [rows][cols] IEEE half floats (row stride cols); x: [n_rows][cols]; y: [n_rows][y_stride].
// Call only when f16_matmul_available().
void f16_matmul_rows(const uint16_t* w, int64_t cols, const float* x, int64_t n_rows, float* y,
                     int64_t y_stride, int64_t o_begin, int64_t o_end);

}  // namespace moat::cpu

// CPU kernels of the forward pass: pure functions of raw pointers and sizes. Each output
// element is computed in a fixed order that does not depend on the batch size or on the
// thread count, so a sequence gets bit-identical logits alone or batched with 31 others.
//
//   float y[out];  moat::cpu::matvec(w, x, y, 0, w.rows());   // y = W x, W {out, in}
//   moat::cpu::rmsnorm(x, norm_f32, eps, n, out);
#pragma once

#include <cstdint>

#include "engine/model_config.h"
#include "engine/tensor.h"

namespace moat::cpu {

// Dot product with 8 independent accumulators, summed in a fixed order (vectorizes without
// -ffast-math and is deterministic).
float dot(const float* a, const float* b, int64_t n);

// sum_i a[i] * b[i] with b int8 (int8 KV), accumulated as dot() does (8 lanes, fixed order).
float dot_i8(const float* a, const int8_t* b, int64_t n);

// y[i] += a * x[i] (attention's weighted V sum), with x float or int8 (int8 KV).
void axpy(float a, const float* x, float* y, int64_t n);
void axpy_i8(float a, const int8_t* x, float* y, int64_t n);

// Y[t][o] = sum_i X[t][i] * W[o][i] for t < n_rows and o in [o_begin, o_end).
// X: [n_rows][in] (row stride in), Y: [n_rows][y_stride]. W is any dtype: F32 rows are read in
// place, others converted one row at a time into `scratch` (cols() floats, caller-owned) and
// reused for all n_rows — the point of batching: each weight row is read once per step.
void matmul_rows(const engine::tensor& w, const float* x, int64_t n_rows, float* y,
                 int64_t y_stride, int64_t o_begin, int64_t o_end, float* scratch);

// out[i] = weight[i] * x[i] / sqrt(mean(x^2) + eps). Norm weights are converted to f32 once
// when the runner is built (they are tiny), so this takes plain floats.
void rmsnorm(const float* x, const float* weight, float eps, int64_t n, float* out);

// rmsnorm of `rows` rows (x: [rows][n], out: [rows][n]), each the same bits as rmsnorm() of that
// row: 8 rows at a time, so 8 sum-of-squares chains are in flight instead of one (each row's sum
// still runs in element order; a 128-wide row is a 128-long chain of dependent adds).
void rmsnorm_rows(const float* x, const float* weight, float eps, int64_t n, int64_t rows,
                  float* out);

// Rotates one head vector of head_dim floats in place for position pos.
// inv_freq: head_dim/2 floats from engine::rope_inv_freq.
void rope(float* head, int32_t head_dim, int32_t pos, const float* inv_freq,
          engine::rope_style style);

// The same rotation split in two, so that the cos/sin of one position are computed once for all
// of its heads (rope() is rope_angles() then rope_rotate(), bit for bit).
// cos_sin: [head_dim] floats, cos of each frequency in the first half, sin in the second.
void rope_angles(int32_t head_dim, int32_t pos, const float* inv_freq, float* cos_sin);
void rope_rotate(float* head, int32_t head_dim, const float* cos_sin, engine::rope_style style);

// In-place softmax over n floats.
void softmax(float* x, int64_t n);

// SwiGLU: gate[i] = silu(gate[i]) * up[i].
void swiglu(float* gate, const float* up, int64_t n);

}  // namespace moat::cpu

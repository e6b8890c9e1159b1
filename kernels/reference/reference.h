// Scalar CPU references of every kernel in kernels/: same arguments, host pointers, plain
// loops, sums in index order. The kernel tests compare against these; tests/unit/cuda also
// checks them against the engine's quant dequantizers so a layout mismatch cannot hide.
//
//   moat::kernels::reference::gemv(w, x, n_tokens, y);   // y: [n_tokens][w.rows]
#pragma once

#include <cstdint>

#include "kernels/formats.h"

namespace moat::kernels::reference {

// Element (r, c) of a weight matrix in any format, as f32.
float weight_at(const gemv_weights& w, int64_t r, int64_t c);
// y[t][o] = sum_i W[o][i] * x[t][i]; x: [n_tokens][cols], y: [n_tokens][rows].
void gemv(const gemv_weights& w, const float* x, int32_t n_tokens, float* y);

// out[t][i] = weight[i] * x[t][i] / sqrt(mean(x[t]^2) + eps); x, out: [n_tokens][n].
void rmsnorm(const float* x, const float* weight, float eps, int32_t n_tokens, int32_t n, float* out);

// Rotates x: [n_tokens][n_heads][head_dim] in place; positions: [n_tokens];
// inv_freq: [head_dim / 2].
void rope(float* x, const int32_t* positions, const float* inv_freq, int32_t n_tokens, int32_t n_heads,
          int32_t head_dim, rope_pairs pairs);

// gate[i] = silu(gate[i]) * up[i] for i < n.
void swiglu(float* gate, const float* up, int64_t n);

// k_pool[rows[i]][*] = k[i][*] and the same for v, for i < n.
void kv_write(const float* k, const float* v, const int32_t* rows, int32_t n, int32_t kv_dim, float* k_pool,
              float* v_pool);

// Decode attention over a paged KV cache (see paged_attention_args in kernels/formats.h).
void paged_attention(const paged_attention_args& a);

// One token per row of logits [n_rows][vocab], using u [n_rows]. Kept set: the probabilities at
// or above the k-th largest (ties at the boundary kept) and at or above min_p * the largest, then the smallest set of the largest
// of those whose mass reaches top_p (again ties kept); the token is the first index, in vocab
// order, where the running kept mass exceeds u * (kept mass).
void sample(const float* logits, int32_t n_rows, int32_t vocab, const sampling_params& p, const float* u,
            int32_t* out);

// The CPU sampler's semantics (backends/engine/sampling.cpp), computed the way the device can:
// no sort, only counting and mass passes over value thresholds. Logits already carry the logit
// bias and penalties (backends/cuda/sampling_prep.h); u: [n_rows] from the sequence's seeded
// generator (double, as the CPU draws it). Per row:
//   temperature < 1e-5: the first maximum;
//   e[i] = exp(logit[i] * (1/T) - max), all in float as the CPU computes them;
//   no top_k/top_p/min_p: the first index, in vocabulary order, where the running mass exceeds
//     u * total (the mode when rounding leaves the walk short);
//   otherwise the order is (e descending, index ascending) and every mask keeps a prefix of it:
//     top_k exactly k (ties at the cut by lowest index), min_p the e >= min_p (at least one),
//     top_p the shortest prefix whose mass reaches top_p * kept; the token is the first in that
//     order where the running mass exceeds u * kept.
// A prefix is represented as (v, c): every e > v plus the e == v at indices <= c, which is how
// the device marks membership without ranks.
void sample_ordered(const float* logits, int32_t n_rows, int32_t vocab, const sampling_params& p, const double* u,
                    int32_t* out);

}  // namespace moat::kernels::reference

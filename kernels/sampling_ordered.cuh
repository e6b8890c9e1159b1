// Sampling on the device with the CPU sampler's semantics (backends/engine/sampling.cpp), as
// specified by kernels::reference::sample_ordered: one block per row, per-row knobs and
// uniform numbers (double, from each sequence's seeded generator: backends/cuda/sampling_prep.h),
// top-k / min-p / top-p as prefixes of the (probability desc, index asc) order and the draw in
// that order, found by counting and mass passes over value thresholds (no sort). Tokens match
// the CPU's up to rounding: expf and the summation order differ from the host's.
//
//   moat::kernels::apply_logit_adds(logits, rows, vocab, row_begin, tokens, values, stream);
//   moat::kernels::sample_ordered(logits, rows, vocab, params, u, workspace, out, stream);
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/formats.h"

namespace moat::kernels {

// logits: [n_rows][vocab] f32; params, u, out: [n_rows] (device); workspace: [n_rows][vocab] f32.
cudaError_t sample_ordered(const float* logits, int32_t n_rows, int32_t vocab, const sampling_params* params,
                           const double* u, float* workspace, int32_t* out, cudaStream_t stream);

// logits[r][tokens[k]] += values[k] for k in [row_begin[r], row_begin[r + 1]), in that order (a
// token may appear twice: a bias, then a penalty). row_begin: [n_rows + 1]; tokens outside the
// vocabulary are skipped. One thread per row: the lists are short (biases and generated tokens).
cudaError_t apply_logit_adds(float* logits, int32_t n_rows, int32_t vocab, const int32_t* row_begin,
                             const int32_t* tokens, const float* values, cudaStream_t stream);

}  // namespace moat::kernels

// Fused dequantize-GEMV for decode: y[t][o] = sum_i W[o][i] x[t][i] with W in any
// weight_format (kernels/formats.h), decoded in registers, never written back as floats.
// One warp per output row, each lane reading 8 consecutive weights (16-byte loads for
// f16/bf16, 8 for int8/int4, 4 for nf4) and up to 8 tokens per pass so a weight is read once
// per 8 tokens; the launcher loops over larger batches.
//
//   moat::kernels::gemv(w, x, n_tokens, y, stream);   // x: [n_tokens][w.cols], y: [n_tokens][w.rows]
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/formats.h"

namespace moat::kernels {

inline constexpr int k_gemv_max_tokens = 8;

// Returns cudaErrorInvalidValue for a bad shape/format/group, else the launch's error.
cudaError_t gemv(const gemv_weights& w, const float* x, int32_t n_tokens, float* y, cudaStream_t stream);

}  // namespace moat::kernels

// Sampling on the device: greedy, temperature, top-k, min-p and top-p, one block per row of logits,
// with the semantics of kernels/reference (reference::sample): ties at a cut-off are kept, and
// the token is picked in vocabulary order from one uniform number per row that the host draws
// from the request's seeded generator. The k-th largest probability and the top-p cut-off are
// found by bisection on the float bit patterns (31 counting passes), so no sort and no
// temporary beyond `workspace` ([n_rows][vocab] floats, device).
//
//   moat::kernels::sample(logits, n_rows, vocab, params, u, workspace, tokens, stream);
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/formats.h"

namespace moat::kernels {

cudaError_t sample(const float* logits, int32_t n_rows, int32_t vocab, const sampling_params& p, const float* u,
                   float* workspace, int32_t* out, cudaStream_t stream);

}  // namespace moat::kernels

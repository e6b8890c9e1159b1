// RoPE in place on [n_tokens][n_heads][head_dim] (queries or keys), each token at its own
// position (positions: device [n_tokens]); inv_freq: device [head_dim/2] from
// engine::rope_inv_freq, so scaling (llama3, linear) is already in the frequencies.
//
//   moat::kernels::rope(q, positions, inv_freq, n_tokens, n_heads, head_dim, rope_pairs::rotate_half, stream);
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/formats.h"

namespace moat::kernels {

cudaError_t rope(float* x, const int32_t* positions, const float* inv_freq, int32_t n_tokens, int32_t n_heads,
                 int32_t head_dim, rope_pairs pairs, cudaStream_t stream);

}  // namespace moat::kernels

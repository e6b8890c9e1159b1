// Fused RMSNorm: out[t][i] = weight[i] * x[t][i] / sqrt(mean(x[t]^2) + eps), one block per token.
//
//   moat::kernels::rmsnorm(x, weight, eps, n_tokens, hidden, out, stream);   // out may be x
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace moat::kernels {

cudaError_t rmsnorm(const float* x, const float* weight, float eps, int32_t n_tokens, int32_t n, float* out,
                    cudaStream_t stream);

}  // namespace moat::kernels

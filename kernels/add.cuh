// Residual add in place: x[i] += y[i] for i < n.
//
//   moat::kernels::add(x, proj, n_tokens * hidden, stream);
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace moat::kernels {

cudaError_t add(float* x, const float* y, int64_t n, cudaStream_t stream);

}  // namespace moat::kernels

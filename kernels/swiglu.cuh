// SwiGLU in place: gate[i] = silu(gate[i]) * up[i] for i < n (all tokens flattened).
//
//   moat::kernels::swiglu(gate, up, n_tokens * intermediate, stream);
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace moat::kernels {

cudaError_t swiglu(float* gate, const float* up, int64_t n, cudaStream_t stream);

}  // namespace moat::kernels

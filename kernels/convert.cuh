// f32 activations to the 16-bit type a tensor-core GEMM reads: out[i] = (half|bf16) in[i],
// round to nearest even. For cuBLASLt prefill (backends/cuda/cublaslt_gemm.h).
//
//   moat::kernels::f32_to_16(x, x16, n_tokens * hidden, /*bf16=*/true, stream);
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace moat::kernels {

// out: n 16-bit values (uint16_t storage holding f16 or bf16 bits).
cudaError_t f32_to_16(const float* in, uint16_t* out, int64_t n, bool bf16, cudaStream_t stream);

}  // namespace moat::kernels

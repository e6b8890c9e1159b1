#include <cuda_bf16.h>

#include "kernels/common.cuh"
#include "kernels/convert.cuh"

namespace moat::kernels {

namespace {

__global__ void f32_to_16_kernel(const float* __restrict__ in, uint16_t* __restrict__ out, int64_t n, bool bf16) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(in[i])) : __half_as_ushort(__float2half_rn(in[i]));
  }
}

}  // namespace

cudaError_t f32_to_16(const float* in, uint16_t* out, int64_t n, bool bf16, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  constexpr int threads = 256;
  const int64_t blocks = (n + threads - 1) / threads;
  f32_to_16_kernel<<<static_cast<unsigned>(blocks < 65535 ? blocks : 65535), threads, 0, stream>>>(in, out, n, bf16);
  return detail::last_launch_error();
}

}  // namespace moat::kernels

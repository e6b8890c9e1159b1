#include "kernels/common.cuh"
#include "kernels/swiglu.cuh"

namespace moat::kernels {

namespace {

constexpr int k_threads = 256;

__global__ void __launch_bounds__(k_threads) swiglu_kernel(float* gate, const float* __restrict__ up, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * k_threads + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * k_threads) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

}  // namespace

cudaError_t swiglu(float* gate, const float* up, int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const int64_t want = (n + k_threads - 1) / k_threads;
  const auto blocks = static_cast<unsigned>(want < 65535 ? want : 65535);  // grid-stride beyond
  swiglu_kernel<<<blocks, k_threads, 0, stream>>>(gate, up, n);
  return detail::last_launch_error();
}

}  // namespace moat::kernels

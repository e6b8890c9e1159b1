#include "kernels/add.cuh"
#include "kernels/common.cuh"

namespace moat::kernels {

namespace {

constexpr int k_threads = 256;

__global__ void __launch_bounds__(k_threads) add_kernel(float* x, const float* __restrict__ y, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * k_threads + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * k_threads)
    x[i] += y[i];
}

}  // namespace

cudaError_t add(float* x, const float* y, int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const int64_t want = (n + k_threads - 1) / k_threads;
  add_kernel<<<static_cast<unsigned>(want < 65535 ? want : 65535), k_threads, 0, stream>>>(x, y, n);
  return detail::last_launch_error();
}

}  // namespace moat::kernels

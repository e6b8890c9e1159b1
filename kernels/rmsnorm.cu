#include "kernels/common.cuh"
#include "kernels/rmsnorm.cuh"

namespace moat::kernels {

namespace {

constexpr int k_threads = 256;

__global__ void __launch_bounds__(k_threads) rmsnorm_kernel(const float* x, const float* __restrict__ weight, float eps,
                                                            int n, float* out) {
  __shared__ float scratch[32];
  const float* xt = x + static_cast<int64_t>(blockIdx.x) * n;
  float* ot = out + static_cast<int64_t>(blockIdx.x) * n;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < n; i += k_threads) ss += xt[i] * xt[i];
  ss = detail::block_sum(ss, scratch);
  const float inv = rsqrtf(ss / n + eps);
  for (int i = threadIdx.x; i < n; i += k_threads) ot[i] = weight[i] * (xt[i] * inv);
}

}  // namespace

cudaError_t rmsnorm(const float* x, const float* weight, float eps, int32_t n_tokens, int32_t n, float* out,
                    cudaStream_t stream) {
  if (n_tokens < 0 || n <= 0) return cudaErrorInvalidValue;
  if (n_tokens == 0) return cudaSuccess;
  rmsnorm_kernel<<<n_tokens, k_threads, 0, stream>>>(x, weight, eps, n, out);
  return detail::last_launch_error();
}

}  // namespace moat::kernels

#include "kernels/common.cuh"
#include "kernels/kv_write.cuh"

namespace moat::kernels {

namespace {

constexpr int k_threads = 256;

// grid (ceil(kv_dim / 256), n): one block row per token.
__global__ void __launch_bounds__(k_threads) kv_write_kernel(const float* __restrict__ k, const float* __restrict__ v,
                                                             const int32_t* __restrict__ rows, int kv_dim,
                                                             float* k_pool, float* v_pool) {
  const int i = blockIdx.x * k_threads + threadIdx.x;
  if (i >= kv_dim) return;
  const int64_t src = static_cast<int64_t>(blockIdx.y) * kv_dim + i;
  const int64_t dst = static_cast<int64_t>(rows[blockIdx.y]) * kv_dim + i;
  k_pool[dst] = k[src];
  v_pool[dst] = v[src];
}

}  // namespace

cudaError_t kv_write(const float* k, const float* v, const int32_t* rows, int32_t n, int32_t kv_dim, float* k_pool,
                     float* v_pool, cudaStream_t stream) {
  if (n < 0 || kv_dim <= 0 || n > 65535) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  kv_write_kernel<<<dim3((kv_dim + k_threads - 1) / k_threads, n), k_threads, 0, stream>>>(k, v, rows, kv_dim, k_pool,
                                                                                           v_pool);
  return detail::last_launch_error();
}

}  // namespace moat::kernels

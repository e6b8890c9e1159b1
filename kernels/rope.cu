#include "kernels/common.cuh"
#include "kernels/rope.cuh"

namespace moat::kernels {

namespace {

constexpr int k_threads = 256;

// One thread per rotated pair: n_tokens * n_heads * head_dim/2 threads.
__global__ void __launch_bounds__(k_threads) rope_kernel(float* x, const int32_t* __restrict__ positions,
                                                         const float* __restrict__ inv_freq, int64_t n_pairs,
                                                         int n_heads, int head_dim, bool adjacent) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * k_threads + threadIdx.x;
  if (idx >= n_pairs) return;
  const int half = head_dim / 2;
  const int i = static_cast<int>(idx % half);
  const int64_t head = idx / half;  // token * n_heads + h
  const int64_t token = head / n_heads;
  float* v = x + head * head_dim;
  float s, c;
  // sincosf, not __sincosf: positions reach 100k+ where the fast version loses digits.
  sincosf(static_cast<float>(positions[token]) * inv_freq[i], &s, &c);
  const int a = adjacent ? 2 * i : i, b = adjacent ? 2 * i + 1 : i + half;
  const float x0 = v[a], x1 = v[b];
  v[a] = x0 * c - x1 * s;
  v[b] = x0 * s + x1 * c;
}

}  // namespace

cudaError_t rope(float* x, const int32_t* positions, const float* inv_freq, int32_t n_tokens, int32_t n_heads,
                 int32_t head_dim, rope_pairs pairs, cudaStream_t stream) {
  if (n_tokens < 0 || n_heads <= 0 || head_dim <= 0 || head_dim % 2 != 0) return cudaErrorInvalidValue;
  const int64_t n_pairs = static_cast<int64_t>(n_tokens) * n_heads * (head_dim / 2);
  if (n_pairs == 0) return cudaSuccess;
  const auto blocks = static_cast<unsigned>((n_pairs + k_threads - 1) / k_threads);
  rope_kernel<<<blocks, k_threads, 0, stream>>>(x, positions, inv_freq, n_pairs, n_heads, head_dim,
                                                pairs == rope_pairs::adjacent);
  return detail::last_launch_error();
}

}  // namespace moat::kernels

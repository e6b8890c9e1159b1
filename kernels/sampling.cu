#include <cfloat>

#include "kernels/common.cuh"
#include "kernels/sampling.cuh"

namespace moat::kernels {

namespace {

constexpr int k_threads = 512;

// (value, index) max with the lower index on ties: the reference's first maximum.
__device__ __forceinline__ void better(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

__device__ __forceinline__ void block_argmax(float& v, int& i, float* sv, int* si) {
  for (int o = 16; o > 0; o >>= 1) better(v, i, __shfl_xor_sync(detail::k_full_mask, v, o),
                                          __shfl_xor_sync(detail::k_full_mask, i, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = i;
  }
  __syncthreads();
  v = lane < k_threads / 32 ? sv[lane] : -FLT_MAX;
  i = lane < k_threads / 32 ? si[lane] : 0x7fffffff;
  for (int o = 16; o > 0; o >>= 1) better(v, i, __shfl_xor_sync(detail::k_full_mask, v, o),
                                          __shfl_xor_sync(detail::k_full_mask, i, o));
}

// Mass (or count) of e[i] >= t over the row, every thread gets the total.
__device__ float mass_at_least(const float* e, int vocab, float t, bool count, float* scratch) {
  float s = 0.0f;
  for (int i = threadIdx.x; i < vocab; i += k_threads)
    if (e[i] >= t) s += count ? 1.0f : e[i];
  return detail::block_sum(s, scratch);
}

__global__ void __launch_bounds__(k_threads) sample_kernel(const float* logits, int vocab, sampling_params p,
                                                           const float* u, float* workspace, int32_t* out) {
  __shared__ float sv[32], scratch[32], s_part[k_threads];
  __shared__ int si[32];
  const int row = blockIdx.x;
  const float* l = logits + static_cast<int64_t>(row) * vocab;
  float* e = workspace + static_cast<int64_t>(row) * vocab;

  float best = -FLT_MAX;
  int best_i = 0x7fffffff;
  for (int i = threadIdx.x; i < vocab; i += k_threads) better(best, best_i, l[i], i);
  block_argmax(best, best_i, sv, si);
  if (p.temperature < k_greedy_temperature) {
    if (threadIdx.x == 0) out[row] = best_i;
    return;
  }
  for (int i = threadIdx.x; i < vocab; i += k_threads) e[i] = expf((l[i] - best) / p.temperature);
  __syncthreads();

  float threshold = 0.0f;
  if (p.top_k > 0 && p.top_k < vocab) {
    const float k = static_cast<float>(p.top_k);
    threshold = detail::largest_threshold([&](float t) { return mass_at_least(e, vocab, t, true, scratch) >= k; });
  }
  threshold = fmaxf(threshold, p.min_p);  // e of the most likely token is exactly 1
  if (p.top_p < 1.0f) {
    const float kept = mass_at_least(e, vocab, threshold, false, scratch);
    const float want = p.top_p * kept, floor = threshold;
    threshold = detail::largest_threshold(
        [&](float t) { return mass_at_least(e, vocab, fmaxf(t, floor), false, scratch) >= want; });
    threshold = fmaxf(threshold, floor);
  }

  // Pick in vocabulary order: each thread sums a contiguous chunk, thread 0 walks the chunk sums
  // and then the one chunk that crosses u * total.
  const int chunk = (vocab + k_threads - 1) / k_threads;
  const int begin = threadIdx.x * chunk, end = min(begin + chunk, vocab);
  float part = 0.0f;
  for (int i = begin; i < end; ++i)
    if (e[i] >= threshold) part += e[i];
  s_part[threadIdx.x] = part;
  __syncthreads();
  if (threadIdx.x != 0) return;
  float total = 0.0f;
  for (int c = 0; c < k_threads; ++c) total += s_part[c];
  const float target = u[row] * total;
  float run = 0.0f;
  int pick = -1;
  for (int c = 0; c < k_threads && pick < 0; ++c) {
    if (run + s_part[c] <= target && c + 1 < k_threads) {
      run += s_part[c];
      continue;
    }
    const int b = c * chunk, en = min(b + chunk, vocab);
    for (int i = b; i < en; ++i) {
      if (e[i] < threshold) continue;
      run += e[i];
      pick = i;
      if (run > target) break;
    }
    if (run > target) break;
  }
  out[row] = pick < 0 ? best_i : pick;
}

}  // namespace

cudaError_t sample(const float* logits, int32_t n_rows, int32_t vocab, const sampling_params& p, const float* u,
                   float* workspace, int32_t* out, cudaStream_t stream) {
  if (n_rows < 0 || vocab <= 0) return cudaErrorInvalidValue;
  if (n_rows == 0) return cudaSuccess;
  sample_kernel<<<n_rows, k_threads, 0, stream>>>(logits, vocab, p, u, workspace, out);
  return detail::last_launch_error();
}

}  // namespace moat::kernels

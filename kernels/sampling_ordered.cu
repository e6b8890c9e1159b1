// See sampling_ordered.cuh; the passes mirror kernels/reference/sampling_ordered.cpp one for one.
#include <cfloat>

#include "kernels/common.cuh"
#include "kernels/sampling_ordered.cuh"

namespace moat::kernels {

namespace {

constexpr int k_threads = 256;  // 512 would cap registers at 128 and spill the bisection state

// A prefix of the order (e desc, index asc): every e > v and the e == v at indices <= c.
struct prefix {
  float v;
  int c;
  __device__ __forceinline__ bool has(float e, int i) const { return e > v || (e == v && i <= c); }
};

__device__ __forceinline__ double warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(detail::k_full_mask, v, o);
  return v;
}

// Block-wide double sum; every thread gets it. scratch: 32 doubles of shared memory.
__device__ double block_sum_d(double v, double* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum_d(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < k_threads / 32 ? scratch[lane] : 0.0;
  return warp_sum_d(v);
}

// Count (mass = false) or mass of the members of w with e > t (strict) or e >= t.
__device__ double pass(const float* e, int n, float t, bool strict, bool mass, prefix w, double* scratch) {
  double s = 0.0;
  for (int i = threadIdx.x; i < n; i += k_threads) {
    const float x = e[i];
    if ((strict ? x > t : x >= t) && w.has(x, i)) s += mass ? static_cast<double>(x) : 1.0;
  }
  return block_sum_d(s, scratch);
}

// Index of the j-th (0-based) member of w with e == v, in index order.
__device__ int tie_index(const float* e, int n, float v, double j, prefix w, double* scratch) {
  int lo = 0, hi = n - 1;
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    double k = 0.0;
    for (int i = threadIdx.x; i <= mid; i += k_threads)
      if (e[i] == v && w.has(e[i], i)) k += 1.0;
    k = block_sum_d(k, scratch);
    if (k >= j + 1.0) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

__device__ prefix first(const float* e, int n, double k, prefix w, double* scratch) {
  const float v = detail::largest_threshold([&](float t) { return pass(e, n, t, false, false, w, scratch) >= k; });
  const double above = pass(e, n, v, true, false, w, scratch);
  return prefix{v, tie_index(e, n, v, k - above - 1.0, w, scratch)};
}

__device__ prefix reaching(const float* e, int n, double limit, prefix w, double* scratch) {
  if (pass(e, n, 0.0f, false, true, w, scratch) < limit) return w;
  const float v = detail::largest_threshold([&](float t) { return pass(e, n, t, false, true, w, scratch) >= limit; });
  const double above = pass(e, n, v, true, true, w, scratch);
  const double ties = pass(e, n, v, false, false, w, scratch) - pass(e, n, v, true, false, w, scratch);
  double t = v > 0.0f ? ceil((limit - above) / v) : 1.0;
  t = fmax(1.0, fmin(t, ties));
  return prefix{v, tie_index(e, n, v, t - 1.0, w, scratch)};
}

__device__ int pick(const float* e, int n, double target, prefix w, int fallback, double* scratch) {
  if (!(pass(e, n, 0.0f, false, true, w, scratch) > target)) return fallback;
  const float v = detail::largest_threshold([&](float t) { return pass(e, n, t, false, true, w, scratch) > target; });
  const double above = pass(e, n, v, true, true, w, scratch);
  const double ties = pass(e, n, v, false, false, w, scratch) - pass(e, n, v, true, false, w, scratch);
  double j = v > 0.0f ? floor((target - above) / v) : 0.0;
  j = fmax(0.0, fmin(j, ties - 1.0));
  return tie_index(e, n, v, j, w, scratch);
}

// (value, index) max with the lower index on ties.
__device__ __forceinline__ void better(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

__global__ void __launch_bounds__(k_threads)
    sample_ordered_kernel(const float* logits, int vocab, const sampling_params* params, const double* u,
                          float* workspace, int32_t* out) {
  __shared__ double scratch[32];
  __shared__ float sv[32];
  __shared__ int si[32];
  __shared__ double s_part[k_threads];
  const int row = blockIdx.x;
  const sampling_params p = params[row];
  const float* l = logits + static_cast<int64_t>(row) * vocab;
  float* e = workspace + static_cast<int64_t>(row) * vocab;

  float best = -FLT_MAX;
  int best_i = 0x7fffffff;
  for (int i = threadIdx.x; i < vocab; i += k_threads) better(best, best_i, l[i], i);
  for (int o = 16; o > 0; o >>= 1)
    better(best, best_i, __shfl_xor_sync(detail::k_full_mask, best, o), __shfl_xor_sync(detail::k_full_mask, best_i, o));
  if ((threadIdx.x & 31) == 0) {
    sv[threadIdx.x >> 5] = best;
    si[threadIdx.x >> 5] = best_i;
  }
  __syncthreads();
  if (threadIdx.x < 32) {
    best = threadIdx.x < k_threads / 32 ? sv[threadIdx.x] : -FLT_MAX;
    best_i = threadIdx.x < k_threads / 32 ? si[threadIdx.x] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1)
      better(best, best_i, __shfl_xor_sync(detail::k_full_mask, best, o), __shfl_xor_sync(detail::k_full_mask, best_i, o));
    if (threadIdx.x == 0) si[0] = best_i;
  }
  __syncthreads();
  best_i = si[0];
  if (p.temperature < k_greedy_temperature) {
    if (threadIdx.x == 0) out[row] = best_i;
    return;
  }
  // The CPU's formula: x = l * (1/T), e = exp(x - max x); max x = l[best] * (1/T) (monotone).
  const float inv_t = 1.0f / p.temperature;
  const float max_x = l[best_i] * inv_t;
  double part = 0.0;
  for (int i = threadIdx.x; i < vocab; i += k_threads) {
    const float x = expf(l[i] * inv_t - max_x);
    e[i] = x;
    part += x;
  }
  const double sum = block_sum_d(part, scratch);  // also orders the e[] writes before the reads

  const bool use_k = p.top_k > 0 && p.top_k < vocab;
  const bool use_p = p.top_p > 0.0f && p.top_p < 1.0f;
  const bool use_min = p.min_p > 0.0f;
  if (!use_k && !use_p && !use_min) {
    // Vocabulary order: chunk sums, then thread 0 walks them and the chunk that crosses.
    const int chunk = (vocab + k_threads - 1) / k_threads;
    const int begin = threadIdx.x * chunk, end = min(begin + chunk, vocab);
    double mine = 0.0;
    for (int i = begin; i < end; ++i) mine += e[i];
    s_part[threadIdx.x] = mine;
    __syncthreads();
    if (threadIdx.x != 0) return;
    double target = u[row] * sum;
    int chosen = best_i;
    for (int c = 0; c < k_threads; ++c) {
      if (target - s_part[c] >= 0.0) {
        target -= s_part[c];
        continue;
      }
      const int b = c * chunk, en = min(b + chunk, vocab);
      for (int i = b; i < en; ++i) {
        target -= e[i];
        if (target < 0.0) {
          chosen = i;
          break;
        }
      }
      break;
    }
    out[row] = chosen;
    return;
  }

  prefix kept{-1.0f, 0};
  if (use_k) kept = first(e, vocab, static_cast<double>(p.top_k), kept, scratch);
  if (use_min) {
    const double at_least = fmax(1.0, pass(e, vocab, p.min_p * 1.0f, false, false, kept, scratch));
    kept = first(e, vocab, fmin(at_least, pass(e, vocab, 0.0f, false, false, kept, scratch)), kept, scratch);
  }
  if (use_p) {
    const double limit = static_cast<double>(p.top_p) * pass(e, vocab, 0.0f, false, true, kept, scratch);
    kept = reaching(e, vocab, limit, kept, scratch);
  }
  const int mode = first(e, vocab, 1.0, kept, scratch).c;
  const double target = u[row] * pass(e, vocab, 0.0f, false, true, kept, scratch);
  const int chosen = pick(e, vocab, target, kept, mode, scratch);
  if (threadIdx.x == 0) out[row] = chosen;
}

__global__ void apply_adds_kernel(float* logits, int n_rows, int vocab, const int32_t* row_begin, const int32_t* tokens,
                                  const float* values) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= n_rows) return;
  float* l = logits + static_cast<int64_t>(row) * vocab;
  for (int k = row_begin[row]; k < row_begin[row + 1]; ++k) {
    const int t = tokens[k];
    if (t >= 0 && t < vocab) l[t] += values[k];
  }
}

}  // namespace

cudaError_t sample_ordered(const float* logits, int32_t n_rows, int32_t vocab, const sampling_params* params,
                           const double* u, float* workspace, int32_t* out, cudaStream_t stream) {
  if (n_rows < 0 || vocab <= 0) return cudaErrorInvalidValue;
  if (n_rows == 0) return cudaSuccess;
  sample_ordered_kernel<<<n_rows, k_threads, 0, stream>>>(logits, vocab, params, u, workspace, out);
  return detail::last_launch_error();
}

cudaError_t apply_logit_adds(float* logits, int32_t n_rows, int32_t vocab, const int32_t* row_begin,
                             const int32_t* tokens, const float* values, cudaStream_t stream) {
  if (n_rows < 0 || vocab <= 0) return cudaErrorInvalidValue;
  if (n_rows == 0) return cudaSuccess;
  constexpr int threads = 128;
  apply_adds_kernel<<<(n_rows + threads - 1) / threads, threads, 0, stream>>>(logits, n_rows, vocab, row_begin, tokens,
                                                                               values);
  return detail::last_launch_error();
}

}  // namespace moat::kernels

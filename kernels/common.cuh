// Device helpers shared by the kernels (included by .cu files only): warp reductions and the
// bf16/f16 loads. Every launcher returns the launch's cudaError_t (cudaGetLastError), never
// aborts; the caller turns it into a status.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moat::kernels::detail {

inline constexpr unsigned k_full_mask = 0xffffffffu;

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(k_full_mask, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(k_full_mask, v, o));
  return v;
}

__device__ __forceinline__ float bf16_bits_to_float(uint16_t b) { return __uint_as_float(static_cast<uint32_t>(b) << 16); }
__device__ __forceinline__ float f16_bits_to_float(uint16_t h) { return __half2float(__ushort_as_half(h)); }

// Sum over a block of blockDim.x threads (a multiple of 32, at most 1024). `scratch`: 32 floats
// of shared memory. Every thread gets the total.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < n_warps ? scratch[lane] : 0.0f;
  return warp_sum(v);
}

// The largest non-negative float t with pred(t): pred is monotone (true at 0). Probabilities
// are >= 0, whose bit patterns order like their values, so 31 halvings of [0, bits(1.0)] find t
// exactly (the samplers' top-k / top-p / min-p thresholds).
template <class Pred>
__device__ float largest_threshold(Pred pred) {
  uint32_t lo = 0, hi = __float_as_uint(1.0f);
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    if (pred(__uint_as_float(mid))) lo = mid;
    else hi = mid - 1;
  }
  return __uint_as_float(lo);
}

inline cudaError_t last_launch_error() { return cudaGetLastError(); }

}  // namespace moat::kernels::detail

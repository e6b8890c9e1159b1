#include <cfloat>

#include "kernels/common.cuh"
#include "kernels/paged_attention.cuh"

namespace moat::kernels {

namespace {

constexpr int k_warps = 4;
constexpr int k_per_lane = k_attention_max_head_dim / 32;  // head elements per lane

// grid (n_heads, n_seq), k_warps * 32 threads. Lane l holds head elements l + 32j.
__global__ void __launch_bounds__(k_warps * 32) paged_attention_kernel(paged_attention_args a) {
  __shared__ float s_m[k_warps], s_l[k_warps];
  __shared__ float s_acc[k_warps][k_attention_max_head_dim];
  const int h = blockIdx.x, seq = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int hd = a.head_dim, kvh = h / (a.n_heads / a.n_kv_heads);
  const int len = a.seq_lens[seq];
  const float* q = a.q + (static_cast<int64_t>(seq) * a.n_heads + h) * hd;
  float* out = a.out + (static_cast<int64_t>(seq) * a.n_heads + h) * hd;
  const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks;

  float qv[k_per_lane], acc[k_per_lane];
#pragma unroll
  for (int j = 0; j < k_per_lane; ++j) {
    const int i = lane + 32 * j;
    qv[j] = i < hd ? q[i] : 0.0f;
    acc[j] = 0.0f;
  }
  float m = -FLT_MAX, l = 0.0f;
  for (int t = warp; t < len; t += k_warps) {
    const int64_t off =
        ((static_cast<int64_t>(table[t / a.block_size]) * a.block_size + t % a.block_size) * a.n_kv_heads + kvh) * hd;
    const float* k = a.k_pool + off;
    const float* v = a.v_pool + off;
    float d = 0.0f;
#pragma unroll
    for (int j = 0; j < k_per_lane; ++j) {
      const int i = lane + 32 * j;
      if (i < hd) d += qv[j] * k[i];
    }
    const float s = detail::warp_sum(d) * a.scale;
    const float m_new = fmaxf(m, s);
    const float corr = __expf(m - m_new), p = __expf(s - m_new);
    l = l * corr + p;
#pragma unroll
    for (int j = 0; j < k_per_lane; ++j) {
      const int i = lane + 32 * j;
      acc[j] = acc[j] * corr + (i < hd ? p * v[i] : 0.0f);
    }
    m = m_new;
  }
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
#pragma unroll
  for (int j = 0; j < k_per_lane; ++j) {
    const int i = lane + 32 * j;
    if (i < hd) s_acc[warp][i] = acc[j];
  }
  __syncthreads();
  float big = -FLT_MAX;
  for (int w = 0; w < k_warps; ++w) big = fmaxf(big, s_m[w]);
  float total = 0.0f;
  for (int w = 0; w < k_warps; ++w) total += s_l[w] * __expf(s_m[w] - big);  // idle warps: l = 0
  for (int i = threadIdx.x; i < hd; i += k_warps * 32) {
    float o = 0.0f;
    for (int w = 0; w < k_warps; ++w) o += s_acc[w][i] * __expf(s_m[w] - big);
    out[i] = len > 0 ? o / total : 0.0f;
  }
}

}  // namespace

cudaError_t paged_attention(const paged_attention_args& a, cudaStream_t stream) {
  if (a.n_seq < 0 || a.n_heads <= 0 || a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads != 0 || a.head_dim <= 0 ||
      a.head_dim > k_attention_max_head_dim || a.block_size <= 0 || a.n_seq > 65535)
    return cudaErrorInvalidValue;
  if (a.n_seq == 0) return cudaSuccess;
  paged_attention_kernel<<<dim3(a.n_heads, a.n_seq), k_warps * 32, 0, stream>>>(a);
  return detail::last_launch_error();
}

}  // namespace moat::kernels

#include "kernels/common.cuh"
#include "kernels/gemv.cuh"

namespace moat::kernels {

namespace {

// Statically initialized, so every device's module has it without a copy.
__constant__ float c_nf4_levels[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// Each decoder turns weights (row, [c, c+n)) into floats. vec(): whether 8-element chunks are
// aligned for one wide load (cols a multiple of 8); otherwise every element takes the scalar path.
struct f16_decoder {
  const uint16_t* d;
  int64_t cols;
  __device__ void chunk8(int64_t r, int64_t c, float* out) const {
    const uint4 v = *reinterpret_cast<const uint4*>(d + r * cols + c);
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      out[2 * k] = f16_bits_to(words[k] & 0xffffu);
      out[2 * k + 1] = f16_bits_to(words[k] >> 16);
    }
  }
  __device__ float one(int64_t r, int64_t c) const { return f16_bits_to(d[r * cols + c]); }
  __device__ static float f16_bits_to(uint32_t h) { return detail::f16_bits_to_float(static_cast<uint16_t>(h)); }
};

struct bf16_decoder {
  const uint16_t* d;
  int64_t cols;
  __device__ void chunk8(int64_t r, int64_t c, float* out) const {
    const uint4 v = *reinterpret_cast<const uint4*>(d + r * cols + c);
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      out[2 * k] = __uint_as_float(words[k] << 16);
      out[2 * k + 1] = __uint_as_float(words[k] & 0xffff0000u);
    }
  }
  __device__ float one(int64_t r, int64_t c) const { return detail::bf16_bits_to_float(d[r * cols + c]); }
};

struct f32_decoder {
  const float* d;
  int64_t cols;
  __device__ void chunk8(int64_t r, int64_t c, float* out) const {
    const float4 a = *reinterpret_cast<const float4*>(d + r * cols + c);
    const float4 b = *reinterpret_cast<const float4*>(d + r * cols + c + 4);
    out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w;
    out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
  }
  __device__ float one(int64_t r, int64_t c) const { return d[r * cols + c]; }
};

// int8 with a scale per row (group 0) or per 32 columns (GGUF Q8_0): 8 elements starting at a
// multiple of 8 share one scale either way.
struct int8_decoder {
  const int8_t* d;
  const float* scales;
  int64_t cols;
  int32_t group;  // 0 or 32
  __device__ float scale(int64_t r, int64_t c) const {
    return group == 0 ? scales[r] : scales[r * (cols / 32) + c / 32];
  }
  __device__ void chunk8(int64_t r, int64_t c, float* out) const {
    const uint2 v = *reinterpret_cast<const uint2*>(d + r * cols + c);
    const float s = scale(r, c);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      // Shift byte k to the top, then an arithmetic shift sign-extends it.
      out[k] = s * static_cast<float>(static_cast<int32_t>(v.x << (24 - 8 * k)) >> 24);
      out[4 + k] = s * static_cast<float>(static_cast<int32_t>(v.y << (24 - 8 * k)) >> 24);
    }
  }
  __device__ float one(int64_t r, int64_t c) const {
    return scale(r, c) * d[r * cols + c];
  }
};

// int4 groups: 8 elements starting at a multiple of 8 sit in one half of one 32-element
// sub-block (bytes (c/32)*16 + c%16 ..+7), all low or all high nibbles, in one group.
struct int4_decoder {
  const uint8_t* d;
  const float* scales;
  int64_t cols, row_bytes, groups;
  int32_t group;
  __device__ void chunk8(int64_t r, int64_t c, float* out) const {
    const uint2 v = *reinterpret_cast<const uint2*>(d + r * row_bytes + (c / 32) * 16 + (c % 16));
    const int shift = (c % 32) < 16 ? 0 : 4;
    const float s = scales[r * groups + c / group];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      out[k] = s * static_cast<float>(static_cast<int>((v.x >> (8 * k + shift)) & 0xfu) - 8);
      out[4 + k] = s * static_cast<float>(static_cast<int>((v.y >> (8 * k + shift)) & 0xfu) - 8);
    }
  }
  __device__ float one(int64_t r, int64_t c) const {
    const uint8_t byte = d[r * row_bytes + (c / 32) * 16 + (c % 16)];
    const int nib = (c % 32) < 16 ? (byte & 0x0f) : (byte >> 4);
    return scales[r * groups + c / group] * static_cast<float>(nib - 8);
  }
};

// nf4 (flat, high nibble first) with the double-quantized absmax decoded per chunk. With cols
// a multiple of 8 a chunk's flat start is a multiple of 8: 4 aligned bytes, one 64-block.
struct nf4_decoder {
  const uint8_t* d;
  const uint8_t* codes;
  const float* absmax2;
  const float* map;
  const float* plain;  // single-level absmax, used when codes is null
  float offset;
  int64_t cols;
  int32_t blocksize, nested;
  __device__ float absmax(int64_t f) const {
    const int64_t b = f / blocksize;
    return codes == nullptr ? plain[b] : map[codes[b]] * absmax2[b / nested] + offset;
  }
  __device__ void chunk8(int64_t r, int64_t c, float* out) const {
    const int64_t f = r * cols + c;
    const uint32_t v = *reinterpret_cast<const uint32_t*>(d + f / 2);
    const float a = absmax(f);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const uint32_t byte = (v >> (8 * k)) & 0xffu;
      out[2 * k] = c_nf4_levels[byte >> 4] * a;
      out[2 * k + 1] = c_nf4_levels[byte & 0xfu] * a;
    }
  }
  __device__ float one(int64_t r, int64_t c) const {
    const int64_t f = r * cols + c;
    const uint8_t byte = d[f / 2];
    return c_nf4_levels[(f & 1) ? (byte & 0x0f) : (byte >> 4)] * absmax(f);
  }
};

constexpr int k_threads = 256;  // 8 warps = 8 rows per block

// x: [n_tok][cols] (n_tok <= 8), y: [n_tok][y_stride]. A warp owns one row; lane l reads
// chunks [8l + 256j, +8).
template <class D>
__global__ void __launch_bounds__(k_threads, 1) gemv_kernel(D w, const float* __restrict__ x, int n_tok, float* y,
                                                         int64_t rows, int64_t cols, int64_t y_stride, bool vec) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (k_threads / 32) + (threadIdx.x >> 5);
  if (row >= rows) return;
  float acc[k_gemv_max_tokens];
#pragma unroll
  for (int t = 0; t < k_gemv_max_tokens; ++t) acc[t] = 0.0f;
  for (int64_t c = lane * 8; c < cols; c += 256) {
    float wv[8];
    const int n = cols - c < 8 ? static_cast<int>(cols - c) : 8;
    if (vec && n == 8) {
      w.chunk8(row, c, wv);
    } else {
#pragma unroll
      for (int k = 0; k < 8; ++k) wv[k] = k < n ? w.one(row, c + k) : 0.0f;
    }
#pragma unroll
    for (int t = 0; t < k_gemv_max_tokens; ++t) {
      if (t >= n_tok) break;
      const float* xt = x + t * cols + c;
      float s = 0.0f;
      if (vec && n == 8) {
        const float4 a = *reinterpret_cast<const float4*>(xt);
        const float4 b = *reinterpret_cast<const float4*>(xt + 4);
        s = wv[0] * a.x + wv[1] * a.y + wv[2] * a.z + wv[3] * a.w + wv[4] * b.x + wv[5] * b.y + wv[6] * b.z +
            wv[7] * b.w;
      } else {
#pragma unroll
        for (int k = 0; k < 8; ++k) s += k < n ? wv[k] * xt[k] : 0.0f;
      }
      acc[t] += s;
    }
  }
#pragma unroll
  for (int t = 0; t < k_gemv_max_tokens; ++t) {
    if (t >= n_tok) break;
    const float s = detail::warp_sum(acc[t]);
    if (lane == 0) y[t * y_stride + row] = s;
  }
}

template <class D>
cudaError_t launch(const D& dec, const gemv_weights& w, const float* x, int32_t n_tokens, float* y, bool vec,
                   cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>((w.rows + k_threads / 32 - 1) / (k_threads / 32));
  for (int32_t t0 = 0; t0 < n_tokens; t0 += k_gemv_max_tokens) {
    const int n = n_tokens - t0 < k_gemv_max_tokens ? n_tokens - t0 : k_gemv_max_tokens;
    gemv_kernel<D><<<blocks, k_threads, 0, stream>>>(dec, x + t0 * w.cols, n, y + t0 * w.rows, w.rows, w.cols,
                                                     w.rows, vec);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

bool aligned(const void* p, uintptr_t a) { return (reinterpret_cast<uintptr_t>(p) % a) == 0; }

// The dispatch table: one launcher per weight_format, in enum order.
using launcher = cudaError_t (*)(const gemv_weights&, const float*, int32_t, float*, cudaStream_t);

cudaError_t launch_f16(const gemv_weights& w, const float* x, int32_t n, float* y, cudaStream_t s) {
  const bool vec = w.cols % 8 == 0 && aligned(w.data, 16) && aligned(x, 16);
  return launch(f16_decoder{static_cast<const uint16_t*>(w.data), w.cols}, w, x, n, y, vec, s);
}
cudaError_t launch_bf16(const gemv_weights& w, const float* x, int32_t n, float* y, cudaStream_t s) {
  const bool vec = w.cols % 8 == 0 && aligned(w.data, 16) && aligned(x, 16);
  return launch(bf16_decoder{static_cast<const uint16_t*>(w.data), w.cols}, w, x, n, y, vec, s);
}
cudaError_t launch_int8(const gemv_weights& w, const float* x, int32_t n, float* y, cudaStream_t s) {
  if (w.scales == nullptr || (w.int8_group != 0 && (w.int8_group != 32 || w.cols % 32 != 0)))
    return cudaErrorInvalidValue;
  const bool vec = w.cols % 8 == 0 && aligned(w.data, 8) && aligned(x, 16);
  return launch(int8_decoder{static_cast<const int8_t*>(w.data), w.scales, w.cols, w.int8_group}, w,
                x, n, y, vec, s);
}
cudaError_t launch_int4(const gemv_weights& w, const float* x, int32_t n, float* y, cudaStream_t s) {
  if (w.scales == nullptr || (w.group != 32 && w.group != 64 && w.group != 128)) return cudaErrorInvalidValue;
  const bool vec = w.cols % 8 == 0 && aligned(w.data, 8) && aligned(x, 16);
  return launch(int4_decoder{static_cast<const uint8_t*>(w.data), w.scales, w.cols, int4_row_bytes(w.cols, w.group),
                             int4_row_groups(w.cols, w.group), w.group},
                w, x, n, y, vec, s);
}
cudaError_t launch_nf4(const gemv_weights& w, const float* x, int32_t n, float* y, cudaStream_t s) {
  const bool nested = w.absmax_codes != nullptr && w.absmax2 != nullptr && w.absmax_map != nullptr;
  if ((!nested && w.absmax == nullptr) || w.blocksize % 8 != 0 || w.blocksize <= 0 || w.nested_blocksize <= 0)
    return cudaErrorInvalidValue;
  const bool vec = w.cols % 8 == 0 && aligned(w.data, 4) && aligned(x, 16);
  return launch(nf4_decoder{static_cast<const uint8_t*>(w.data), nested ? w.absmax_codes : nullptr, w.absmax2,
                            w.absmax_map, w.absmax, w.absmax_offset, w.cols, w.blocksize, w.nested_blocksize},
                w, x, n, y, vec, s);
}

cudaError_t launch_f32(const gemv_weights& w, const float* x, int32_t n, float* y, cudaStream_t s) {
  const bool vec = w.cols % 8 == 0 && aligned(w.data, 16) && aligned(x, 16);
  return launch(f32_decoder{static_cast<const float*>(w.data), w.cols}, w, x, n, y, vec, s);
}

constexpr launcher k_table[k_weight_formats] = {launch_f16, launch_bf16, launch_int8, launch_int4, launch_nf4,
                                                launch_f32};

}  // namespace

cudaError_t gemv(const gemv_weights& w, const float* x, int32_t n_tokens, float* y, cudaStream_t stream) {
  const auto f = static_cast<int>(w.format);
  if (f < 0 || f >= k_weight_formats || w.rows <= 0 || w.cols <= 0 || w.data == nullptr || n_tokens < 0)
    return cudaErrorInvalidValue;
  if (n_tokens == 0) return cudaSuccess;
  return k_table[f](w, x, n_tokens, y, stream);
}

}  // namespace moat::kernels

// The NF4 matrix product in bf16 for batches of 8 and more (compiled with -mavx512bf16 besides
// the AVX-512 flags; used only where the CPU has AVX512_BF16, see nf4_bf16_gemm()).
//
// What bitsandbytes does on GPUs: dequantize to 16 bits, then a 16-bit matmul with f32
// accumulation. Here a tile of RT weight rows is decoded once into per-thread scratch as bf16
// (level * absmax in f32, rounded to nearest even), the activations are rounded to bf16 once
// per call, and vdpbf16ps does 32 bf16 products a step (two per f32 lane, exact in f32) into f32
// accumulators: twice the MACs of the f32 FMA tiles. Each weight and activation carries a
// relative rounding error of at most 2^-9, so an output is within about 2 * 2^-8 * sum |w||x|
// of the f32 product (the tests hold it to that bound).
//
// Layout: both operands stay in element order, so lane i of a step sums elements 2i and 2i+1.
#include "cpu/quant/kernel_tables.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__)
#include <immintrin.h>

#include "cpu/quant/nf4_bf16_decode.inc"

namespace moat::cpu::quant::detail {
namespace {

inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }

// 32 floats at p -> 32 bf16 at out (round to nearest even).
inline void store_bf16x32(const float* p, uint16_t* out) {
  const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(p + 16), _mm512_loadu_ps(p));
  _mm512_storeu_si512(out, (__m512i)h);
}

// x [batch][cols] floats -> [batch][cols] bf16 in the calling thread's scratch (cols % 64 == 0).
const uint16_t* activations_bf16(const float* x, size_t batch, size_t cols) {
  auto* out = reinterpret_cast<uint16_t*>(thread_scratch(batch * cols / 2));
  for (size_t i = 0; i < batch * cols; i += 32) store_bf16x32(x + i, out + i);
  return out;
}

// RT decoded rows (wt) by BT bf16 activation rows from b0: 32 columns a step.
template <int RT, int BT>
void bf16_tile(const uint16_t* wt, size_t cols, const uint16_t* xb, size_t b0, size_t r0, float* y, size_t y_stride) {
  __m512 acc[RT][BT];
  for (int r = 0; r < RT; ++r) {
    for (int b = 0; b < BT; ++b) acc[r][b] = _mm512_setzero_ps();
  }
  for (size_t c = 0; c < cols; c += 32) {
    __m512bh wv[RT];
    for (int r = 0; r < RT; ++r) wv[r] = as_bh(_mm512_loadu_si512(wt + static_cast<size_t>(r) * cols + c));
    for (int b = 0; b < BT; ++b) {
      const __m512bh xv = as_bh(_mm512_loadu_si512(xb + (b0 + static_cast<size_t>(b)) * cols + c));
      for (int r = 0; r < RT; ++r) acc[r][b] = _mm512_dpbf16_ps(acc[r][b], wv[r], xv);
    }
  }
  for (int r = 0; r < RT; ++r) {
    for (int b = 0; b < BT; ++b) y[(b0 + b) * y_stride + r0 + r] = _mm512_reduce_add_ps(acc[r][b]);
  }
}

// 4 x 6 tiles: 24 accumulators + 4 weight registers + 1 activation register of the 32.
constexpr int batch_tile = 6;

template <int RT>
void bf16_rows(const uint8_t* packed, const float* absmax, size_t cols, size_t r0, const uint16_t* xb, size_t batch,
               float* y, size_t y_stride) {
  auto* wt = reinterpret_cast<uint16_t*>(thread_scratch_weights(RT * cols / 2));
  decode_rows_bf16(packed, absmax, cols, r0, RT, wt);
  size_t b = 0;
  for (; b + batch_tile <= batch; b += batch_tile) bf16_tile<RT, batch_tile>(wt, cols, xb, b, r0, y, y_stride);
  switch (batch - b) {
    case 5: bf16_tile<RT, 5>(wt, cols, xb, b, r0, y, y_stride); break;
    case 4: bf16_tile<RT, 4>(wt, cols, xb, b, r0, y, y_stride); break;
    case 3: bf16_tile<RT, 3>(wt, cols, xb, b, r0, y, y_stride); break;
    case 2: bf16_tile<RT, 2>(wt, cols, xb, b, r0, y, y_stride); break;
    case 1: bf16_tile<RT, 1>(wt, cols, xb, b, r0, y, y_stride); break;
    default: break;
  }
}

void gemm_nf4_bf16_tiles(const uint8_t* packed, const float* absmax, size_t cols, const float* x, size_t batch,
                         float* y, size_t y_stride, size_t row_begin, size_t row_end) {
  const uint16_t* xb = activations_bf16(x, batch, cols);
  size_t r = row_begin;
  for (; r + 4 <= row_end; r += 4) bf16_rows<4>(packed, absmax, cols, r, xb, batch, y, y_stride);
  for (; r < row_end; ++r) bf16_rows<1>(packed, absmax, cols, r, xb, batch, y, y_stride);
}

}  // namespace

nf4_gemm_fn nf4_bf16_gemm() {
  __builtin_cpu_init();
  const bool cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512bf16");
  return cpu ? gemm_nf4_bf16_tiles : nullptr;
}

}  // namespace moat::cpu::quant::detail

#else
namespace moat::cpu::quant::detail {
nf4_gemm_fn nf4_bf16_gemm() { return nullptr; }
}  // namespace moat::cpu::quant::detail
#endif

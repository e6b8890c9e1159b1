// The AVX2 path (compiled with -mavx2 -mfma -mf16c; chosen at run time only where the CPU has
// them). Everything here is in an anonymous namespace and calls no inline function of a shared
// header, so no AVX2 code can be picked by the linker for a baseline caller.
#include "cpu/quant/kernel_tables.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#include <cmath>

namespace moat::cpu::quant::detail {
namespace {

using engine::quant::block_q4_0;
using engine::quant::block_q8_0;

// Not std::min: an out-of-line copy of a template compiled here could serve baseline callers.
inline size_t smin(size_t a, size_t b) { return a < b ? a : b; }

inline float half(uint16_t h) { return _cvtsh_ss(h); }

// The NF4 table's floats, without calling std::array::data() (an unoptimized build would
// emit a weak copy of it compiled with this file's ISA flags).
inline const float* nf4_table() { return reinterpret_cast<const float*>(&engine::quant::nf4_code); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Eight int32 partial sums of w . a over 32 signed bytes: |w| (unsigned) times a with w's sign.
inline __m256i dot32(__m256i w, __m256i a) {
  const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
  return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

// 16 bytes of Q4_0-ordered nibbles -> 32 signed values in element order (low nibbles are
// elements 0..15, high nibbles 16..31), minus the offset 8.
inline __m256i unpack_q4(const uint8_t* qs) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m = _mm_set1_epi8(0x0f);
  const __m256i v = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
  return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

inline __m256i load32(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// sum over blocks [0, nb) of scale(b) * (weights(b) . a[b]), with two accumulators so
// consecutive blocks do not wait on each other's FMA.
template <typename Weights, typename Scale>
float blocks_dot(const Weights& weights, const Scale& scale, const block_q8_0* a, size_t nb) {
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  size_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(weights(b), load32(a[b].qs))), _mm256_set1_ps(scale(b)), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(weights(b + 1), load32(a[b + 1].qs))), _mm256_set1_ps(scale(b + 1)),
                           acc1);
  }
  if (b < nb) acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(weights(b), load32(a[b].qs))), _mm256_set1_ps(scale(b)), acc0);
  return hsum(_mm256_add_ps(acc0, acc1));
}

float q8_0_q8_0(const block_q8_0* w, const block_q8_0* a, size_t n) {
  const size_t nb = (n + 31) / 32;
  return blocks_dot([&](size_t b) { return load32(w[b].qs); },
                    [&](size_t b) { return half(w[b].d) * half(a[b].d); }, a, nb);
}

float q4_0_q8_0(const block_q4_0* w, const block_q8_0* a, size_t n) {
  const size_t nb = (n + 31) / 32;
  return blocks_dot([&](size_t b) { return unpack_q4(w[b].qs); },
                    [&](size_t b) { return half(w[b].d) * half(a[b].d); }, a, nb);
}

float int8_q8_0(const int8_t* w, float scale, const block_q8_0* a, size_t n) {
  const size_t full = n / 32;
  float sum = blocks_dot([&](size_t b) { return load32(w + b * 32); }, [&](size_t b) { return half(a[b].d); }, a, full) *
              scale;
  if (n % 32 != 0) sum += engine::quant::dot_int8_q8_0(w + full * 32, scale, a + full, n % 32);
  return sum;
}

float int4_q8_0(const uint8_t* w, const float* scales, size_t group, const block_q8_0* a, size_t n) {
  const size_t nb = (n + 31) / 32;
  const size_t per_group = group / 32;
  return blocks_dot([&](size_t b) { return unpack_q4(w + b * 16); },
                    [&](size_t b) { return scales[b / per_group] * half(a[b].d); }, a, nb);
}

// Eight NF4 codes (indices in the low 4 bits of each int32) -> their values.
inline __m256 nf4_lookup(__m256i idx, __m256 lut_lo, __m256 lut_hi) {
  const __m256 lo = _mm256_permutevar8x32_ps(lut_lo, idx);
  const __m256 hi = _mm256_permutevar8x32_ps(lut_hi, idx);
  return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));  // bit 3 selects
}

float nf4_f32(const uint8_t* packed, const float* absmax, size_t blocksize, size_t start, const float* x, size_t n) {
  float sum = 0.0f;
  size_t i = 0;
  // Up to the first block boundary, the reference.
  const size_t lead = smin(n, (blocksize - start % blocksize) % blocksize);
  if (lead != 0) {
    sum += engine::quant::dot_nf4_f32(packed, absmax, blocksize, start, x, lead);
    i = lead;
  }
  const __m256 lut_lo = _mm256_loadu_ps(nf4_table());
  const __m256 lut_hi = _mm256_loadu_ps(nf4_table() + 8);
  const __m128i m = _mm_set1_epi8(0x0f);
  __m256 total = _mm256_setzero_ps();
  while (n - i >= 32) {
    const size_t e = start + i;  // even, block-aligned at the first step of each block
    const size_t block = e / blocksize;
    const size_t len = smin(blocksize - e % blocksize, n - i) & ~size_t{31};
    // Four accumulators: the four FMAs of a step are independent.
    __m256 acc = _mm256_setzero_ps();
    __m256 acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps();
    __m256 acc3 = _mm256_setzero_ps();
    for (size_t j = 0; j < len; j += 32) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed + (e + j) / 2));
      const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), m);
      const __m128i lo = _mm_and_si128(bytes, m);
      const __m128i first = _mm_unpacklo_epi8(hi, lo);  // elements 0..15 in order
      const __m128i second = _mm_unpackhi_epi8(hi, lo); // elements 16..31
      const float* xp = x + i + j;
      acc = _mm256_fmadd_ps(nf4_lookup(_mm256_cvtepu8_epi32(first), lut_lo, lut_hi), _mm256_loadu_ps(xp), acc);
      acc1 = _mm256_fmadd_ps(nf4_lookup(_mm256_cvtepu8_epi32(_mm_srli_si128(first, 8)), lut_lo, lut_hi),
                             _mm256_loadu_ps(xp + 8), acc1);
      acc2 = _mm256_fmadd_ps(nf4_lookup(_mm256_cvtepu8_epi32(second), lut_lo, lut_hi), _mm256_loadu_ps(xp + 16), acc2);
      acc3 = _mm256_fmadd_ps(nf4_lookup(_mm256_cvtepu8_epi32(_mm_srli_si128(second, 8)), lut_lo, lut_hi),
                             _mm256_loadu_ps(xp + 24), acc3);
    }
    acc = _mm256_add_ps(_mm256_add_ps(acc, acc1), _mm256_add_ps(acc2, acc3));
    total = _mm256_fmadd_ps(acc, _mm256_set1_ps(absmax[block]), total);
    i += len;
    // A block's tail shorter than 32 values (only at the end of the row): the reference.
    if (len == 0) break;
  }
  sum += hsum(total);
  if (i < n) sum += engine::quant::dot_nf4_f32(packed, absmax, blocksize, start + i, x + i, n - i);
  return sum;
}

void quantize_q8_0(const float* x, size_t n, block_q8_0* out) {
  const size_t full = n / 32;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (size_t b = 0; b < full; ++b) {
    const float* src = x + b * 32;
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(src + 8 * k);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float d = _mm_cvtss_f32(m) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) {
      // Round half away from zero, as the reference's lround: truncate, then step away from
      // zero where the dropped fraction (exact in float) is at least a half.
      const __m256 s = _mm256_mul_ps(v[k], vid);
      const __m256 t = _mm256_round_ps(s, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const __m256 up = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(s, t)), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
      const __m256 step = _mm256_and_ps(up, _mm256_or_ps(_mm256_and_ps(s, sign), _mm256_set1_ps(1.0f)));
      q[k] = _mm256_cvtps_epi32(_mm256_add_ps(t, step));
    }
    // int32 -> int8 with the lanes put back in order after the in-lane packs.
    const __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
    const __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
    const __m256i p = _mm256_packs_epi16(p01, p23);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].qs), _mm256_permutevar8x32_epi32(p, order));
  }
  if (n % 32 != 0) engine::quant::quantize_q8_0(x + full * 32, n % 32, out + full);
}

}  // namespace
}  // namespace moat::cpu::quant::detail

#include "cpu/quant/gemm_avx2.inc"

namespace moat::cpu::quant::detail {

const dot_kernels* avx2_kernels() {
  // Tiles for the integer formats; NF4 batches loop over its dots here.
  static const dot_kernels table{isa::avx2,       q8_0_q8_0,       q4_0_q8_0,       int8_q8_0,
                                 int4_q8_0,       nf4_f32,         quantize_q8_0,   gemm_q8_0_tiles,
                                 gemm_q4_0_tiles, gemm_int8_tiles, gemm_int4_tiles, nullptr,
                                 nullptr,         nullptr,         nullptr,         nullptr};
  return &table;
}

}  // namespace moat::cpu::quant::detail

#else

namespace moat::cpu::quant::detail {
const dot_kernels* avx2_kernels() { return nullptr; }
}  // namespace moat::cpu::quant::detail

#endif

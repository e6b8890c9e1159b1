// The 4-bit integer products (q4_0, int4) on AMX int8 tiles for large batches (prefill),
// compiled with -mamx-tile -mamx-int8 besides the AVX-512 flags; only in the AVX-512 VNNI
// table, and only where the CPU has AMX-INT8 and the kernel grants tile data (see
// int4_amx_gemms()).
//
// Bit for bit the arithmetic of the VNNI lanes (gemm_lanes_avx512.inc), so a sequence's
// logits do not depend on whether its batch took these tiles: per output (row n, activation
// row m) and block i of 32,
//   T = -8 * sum_j q_mj + sum_j c_nj q_mj      exact in int32 (c: 4-bit code, q: int8)
//   acc = fma(float(T), d_w(n, i) * d_a(m, i), acc)     in block order
// Only how T's exact integer sum is formed differs: tdpbusd (unsigned codes x signed
// activations) does 16 x 16 x 32 of them an instruction, into an int32 tile that is stored and
// finished by the vector unit (add the -8 term, convert, scale, fma), 16 outputs a register.
//
// Per call: activations -> per block i and group g of 16 activation rows a B tile (8 rows of
// 16 dwords: B[p][m] = dword p of row 16g+m's block i), the 16 rows' -8 * byte sums and
// scales. Per 16 weight rows: every block's codes unpacked once to an A tile (16 rows x 32
// bytes, element order) with the rows' scales, then each group runs over all blocks with 16
// register accumulators.
#include "cpu/quant/kernel_tables.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__F16C__) && defined(__AMX_TILE__) && \
    defined(__AMX_INT8__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace moat::cpu::quant::detail {
namespace {

#include "cpu/quant/amx_tiles.inc"

constexpr size_t tile_dim = 16;
constexpr size_t b_words = 8 * tile_dim;  // one B tile: 8 rows of 16 dwords

// tmm0..3: C (16 x 16 int32); tmm4, tmm6: A (16 rows x 32 code bytes); tmm5, tmm7: B (8 rows
// of 16 dwords).
void configure_tiles() {
  tile_config c;
  for (int t : {0, 1, 2, 3}) {
    c.colsb[t] = 64;
    c.rows[t] = 16;
  }
  for (int t : {4, 6}) {
    c.colsb[t] = 32;
    c.rows[t] = 16;
  }
  for (int t : {5, 7}) {
    c.colsb[t] = 64;
    c.rows[t] = 8;
  }
  load_tile_config(c);
}

// The activations of one call, per (block i, group g) at index i * groups + g.
struct packed_activations {
  const uint32_t* b;     // B tiles, b_words each
  const int32_t* start;  // 16 per tile: -8 * the row's byte sum of block i (0 past the batch)
  const float* scale;    // 16 per tile: the row's block scale (0 past the batch)
  size_t groups;
};

packed_activations pack_activations(const block_q8_0* xq, size_t batch, size_t nb) {
  const size_t groups = (batch + tile_dim - 1) / tile_dim, tiles = nb * groups;
  float* buf = thread_scratch(tiles * (b_words + 2 * tile_dim) + 15);
  auto* b = align64<uint32_t>(buf);
  auto* start = reinterpret_cast<int32_t*>(b + tiles * b_words);
  auto* scale = reinterpret_cast<float*>(start + tiles * tile_dim);
  const __m512i ones = _mm512_set1_epi16(1);
  for (size_t g = 0; g < groups; ++g) {
    for (size_t i = 0; i < nb; ++i) {
      const size_t t = i * groups + g;
      __m512i v[16];
      for (size_t m = 0; m < tile_dim; ++m) {
        const size_t row = g * tile_dim + m;
        if (row >= batch) {
          v[m] = _mm512_setzero_si512();
          start[t * tile_dim + m] = 0;
          scale[t * tile_dim + m] = 0.0f;
          continue;
        }
        const block_q8_0& blk = xq[row * nb + i];
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs));
        v[m] = _mm512_castsi256_si512(q);
        start[t * tile_dim + m] =
            -8 * _mm512_reduce_add_epi32(_mm512_madd_epi16(_mm512_cvtepi8_epi16(q), ones));
        scale[t * tile_dim + m] = _cvtsh_ss(blk.d);
      }
      transpose16(v);  // v[p] = dword p of the 16 rows (p < 8: the block's 32 bytes)
      for (size_t p = 0; p < 8; ++p) _mm512_store_si512(b + t * b_words + p * tile_dim, v[p]);
    }
  }
  return {b, start, scale, groups};
}

// Where a 4-bit format keeps row r's block i: 16 code bytes (element e < 16: low nibble of
// byte e; e >= 16: high nibble of byte e - 16) and the block's scale.
struct rows_q4_0 {
  const block_q4_0* w;
  size_t nb;
  const uint8_t* codes(size_t r, size_t i) const { return w[r * nb + i].qs; }
  float scale(size_t r, size_t i) const { return _cvtsh_ss(w[r * nb + i].d); }
};
struct rows_int4 {
  const uint8_t* w;
  const float* scales;
  size_t row_bytes, row_groups;
  unsigned group_shift;  // log2 of blocks per group (groups of 32, 64, 128: 0, 1, 2), no division
                         // per block
  const uint8_t* codes(size_t r, size_t i) const { return w + r * row_bytes + i * 16; }
  float scale(size_t r, size_t i) const { return scales[r * row_groups + (i >> group_shift)]; }
};

// Rows [r0, r0 + nrows) unpacked: per block i, A tile at a + i * 512 (16 rows x 32 bytes,
// missing rows zero) and the rows' scales at ws + i * 16.
template <typename F>
void unpack_rows(const F& f, size_t r0, size_t nrows, size_t nb, uint8_t* a, float* ws) {
  const __m128i low = _mm_set1_epi8(0x0f);
  for (size_t i = 0; i < nb; ++i) {
    uint8_t* ai = a + i * 512;
    for (size_t l = 0; l < tile_dim; ++l) {
      __m128i lo = _mm_setzero_si128(), hi = _mm_setzero_si128();
      float s = 0.0f;
      if (l < nrows) {
        const __m128i p = _mm_loadu_si128(reinterpret_cast<const __m128i*>(f.codes(r0 + l, i)));
        lo = _mm_and_si128(p, low);
        hi = _mm_and_si128(_mm_srli_epi16(p, 4), low);
        s = f.scale(r0 + l, i);
      }
      _mm_store_si128(reinterpret_cast<__m128i*>(ai + l * 32), lo);
      _mm_store_si128(reinterpret_cast<__m128i*>(ai + l * 32 + 16), hi);
      ws[i * tile_dim + l] = s;
    }
  }
}

// acc[n] (lane m) += float(C[n][m] + start[m]) * (ws[n] * scale[m]) for the C tile stored at c.
inline void finish_block(const int32_t* c, const int32_t* start, const float* scale,
                         const float* ws, __m512 acc[16]) {
  const __m512i st = _mm512_load_si512(start);
  const __m512 sc = _mm512_load_ps(scale);
  for (int n = 0; n < 16; ++n) {
    const __m512 t = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_load_si512(c + 16 * n), st));
    acc[n] = _mm512_fmadd_ps(t, _mm512_mul_ps(_mm512_set1_ps(ws[n]), sc), acc[n]);
  }
}

// Tile numbers are part of the instruction, so each stage names its tiles as literals: block
// j into C tile T with A/B in tmm A_/B_ (two operand pairs alternate), then C stored and
// finished in block order.
#define MOAT_AMX_ISSUE(T, A_, B_, j)  \
  do {                                \
    _tile_zero(T);                    \
    _tile_loadd(A_, a + (j)*512, 32); \
    _tile_loadd(B_, b_of(j), 64);     \
    _tile_dpbusd(T, A_, B_);          \
  } while (0)
#define MOAT_AMX_FINISH(T, j)                                                     \
  do {                                                                            \
    _tile_stored(T, c[T], 64);                                                    \
    finish_block(c[T], x.start + tv(j), x.scale + tv(j), ws + (j)*tile_dim, acc); \
  } while (0)

// Unpacked rows (a, ws) by group g over all nb blocks. Four C tiles in flight: blocks j + 2 and
// j + 3 multiply while the vector unit finishes j and j + 1.
void group_pass(const uint8_t* a, const float* ws, size_t nb, const packed_activations& x, size_t g,
                size_t batch, size_t r0, size_t nrows, float* y, size_t y_stride) {
  alignas(64) int32_t c[4][256];
  __m512 acc[16];
  for (auto& v : acc) v = _mm512_setzero_ps();
  auto b_of = [&](size_t i) { return x.b + (i * x.groups + g) * b_words; };
  auto tv = [&](size_t i) { return (i * x.groups + g) * tile_dim; };
  if (nb > 0) MOAT_AMX_ISSUE(0, 4, 5, 0);
  if (nb > 1) MOAT_AMX_ISSUE(1, 6, 7, 1);
  for (size_t i = 0; i < nb; i += 4) {
    if (i + 2 < nb) MOAT_AMX_ISSUE(2, 4, 5, i + 2);
    if (i + 3 < nb) MOAT_AMX_ISSUE(3, 6, 7, i + 3);
    MOAT_AMX_FINISH(0, i);
    if (i + 1 < nb) MOAT_AMX_FINISH(1, i + 1);
    if (i + 4 < nb) MOAT_AMX_ISSUE(0, 4, 5, i + 4);
    if (i + 5 < nb) MOAT_AMX_ISSUE(1, 6, 7, i + 5);
    if (i + 2 < nb) MOAT_AMX_FINISH(2, i + 2);
    if (i + 3 < nb) MOAT_AMX_FINISH(3, i + 3);
  }
  // acc[n] lane m -> y[(16g + m) * y_stride + r0 + n].
  __m512i v[16];
  for (int n = 0; n < 16; ++n) v[n] = _mm512_castps_si512(acc[n]);
  transpose16(v);
  const __mmask16 keep = static_cast<__mmask16>((1u << nrows) - 1);
  const size_t m_end = std::min(tile_dim, batch - g * tile_dim);
  for (size_t m = 0; m < m_end; ++m) {
    _mm512_mask_storeu_ps(y + (g * tile_dim + m) * y_stride + r0, keep, _mm512_castsi512_ps(v[m]));
  }
}

#undef MOAT_AMX_ISSUE
#undef MOAT_AMX_FINISH

template <typename F>
void amx_int4_gemm(const F& f, size_t nb, const block_q8_0* xq, size_t batch, float* y,
                   size_t y_stride, size_t row_begin, size_t row_end) {
  if (row_begin >= row_end || batch == 0 || nb == 0) return;
  const packed_activations x = pack_activations(xq, batch, nb);
  float* buf = thread_scratch_weights(nb * (128 + tile_dim) + 15);
  auto* a = align64<uint8_t>(buf);
  auto* ws = reinterpret_cast<float*>(a + nb * 512);
  configure_tiles();  // this thread's tile state; released below
  for (size_t r0 = row_begin; r0 < row_end; r0 += tile_dim) {
    const size_t nrows = std::min(tile_dim, row_end - r0);
    unpack_rows(f, r0, nrows, nb, a, ws);
    for (size_t g = 0; g < x.groups; ++g)
      group_pass(a, ws, nb, x, g, batch, r0, nrows, y, y_stride);
  }
  _tile_release();
}

void gemm_q4_0_amx(const block_q4_0* w, size_t cols, const block_q8_0* xq, size_t batch, float* y,
                   size_t y_stride, size_t row_begin, size_t row_end) {
  const size_t nb = (cols + 31) / 32;
  amx_int4_gemm(rows_q4_0{w, nb}, nb, xq, batch, y, y_stride, row_begin, row_end);
}

void gemm_int4_amx(const uint8_t* w, const float* scales, size_t group, size_t cols,
                   const block_q8_0* xq, size_t batch, float* y, size_t y_stride, size_t row_begin,
                   size_t row_end) {
  const size_t nb = (cols + 31) / 32;
  amx_int4_gemm(rows_int4{w, scales, engine::quant::int4_row_bytes(cols, group),
                          engine::quant::int4_row_groups(cols, group),
                          static_cast<unsigned>(std::countr_zero(group / 32))},
                nb, xq, batch, y, y_stride, row_begin, row_end);
}

const char* amx_unavailable() {
  __builtin_cpu_init();
  const bool cpu = cpuid7_edx_has(cpuid_amx_tile | cpuid_amx_int8) && __builtin_cpu_supports("avx512f") &&
                   __builtin_cpu_supports("avx512bw");
  return amx_permission_problem(cpu, "this CPU lacks AMX-TILE, AMX-INT8 or AVX-512");
}

}  // namespace

const char* int4_amx_unavailable() {
  static const char* const why = amx_unavailable();
  return why;
}

int4_amx_fns int4_amx_gemms() {
  if (int4_amx_unavailable() != nullptr) return {};
  return {gemm_q4_0_amx, gemm_int4_amx};
}

}  // namespace moat::cpu::quant::detail

#else
namespace moat::cpu::quant::detail {
const char* int4_amx_unavailable() {
  return "this build has no AMX int8 tiles (compiler without -mamx-int8)";
}
int4_amx_fns int4_amx_gemms() {
  return {};
}
}  // namespace moat::cpu::quant::detail
#endif

// The NF4 matrix product on AMX tiles for batches of 8 and more (compiled with -mamx-tile
// -mamx-bf16 besides the AVX-512 and AVX512_BF16 flags; used only where the CPU has AMX-BF16
// and the kernel lets this process use tile data, see nf4_amx_gemm()).
//
// The same products as the bf16 tiles (kernels_nf4_bf16.cpp): weights level * absmax rounded
// to bf16, activations rounded to bf16, exact products summed in f32. Only the summation order
// differs, so the bf16 tiles' error bound holds. tdpbf16ps does 16 x 16 x 32 MACs an
// instruction, so the arithmetic is nearly free and decoding NF4 to bf16 is what costs.
//
// Per call, on the calling thread:
//  - activations x [batch][cols] -> bf16 B tiles, one 1 KiB block per k-step s (32 values) and
//    group g of 16 activation rows, the groups of one step side by side:
//      xp[(s * groups + g) * 256 + p * 16 + m] = bf16 pair (x[16g+m][32s+2p], x[16g+m][32s+2p+1])
//    (rows past the batch are zero);
//  - per block of 16 weight rows from row_begin: decode into wt [16][cols] bf16 (element
//    order, rows past row_end zero), then for up to 6 groups at a time, over all k-steps:
//      C_g (tmm0..5, 16 x 16 f32) += A (tmm6: wt [16][32s, 32s+32)) . B (tmm7: block (s, g))
//    so C_g[n][m] = weight row r0+n . activation row 16g+m, transposed into y.
// Every output is the same chain of tdpbf16ps over the same k-steps whatever the batch, the
// other rows of the batch or the row split (blocks are zero-padded, never shortened).
#include "cpu/quant/kernel_tables.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__) && defined(__AMX_TILE__) && \
    defined(__AMX_BF16__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cpu/quant/nf4_bf16_decode.inc"

namespace moat::cpu::quant::detail {
namespace {

constexpr size_t tile_dim = 16;  // weight rows per A tile, activation rows per B tile, pairs per row
constexpr size_t k_step = 32;    // bf16 values per tile row (64 bytes)
constexpr size_t block_words = tile_dim * tile_dim;  // one packed B tile in 32-bit pairs
constexpr size_t max_groups = 6;  // accumulators tmm0..5 beside A (tmm6) and B (tmm7)

// The 64-byte operand of ldtilecfg: palette 1, every tile 16 rows of 64 bytes.
struct alignas(64) tile_config {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

void load_tile_config() {
  tile_config c;
  for (int t = 0; t < 8; ++t) {
    c.colsb[t] = 64;
    c.rows[t] = tile_dim;
  }
  _tile_loadconfig(&c);
}

// r[i] <- column i of the 16 x 16 matrix of 32-bit words whose rows are r[0..15].
void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  // Per group q of 4 rows, u[4q + j] holds, in 128-bit lane L, column 4L + j of rows 4q..4q+3.
  __m512i u[16];
  for (int q = 0; q < 4; ++q) {
    const __m512i* a = t + 4 * q;
    u[4 * q + 0] = _mm512_unpacklo_epi64(a[0], a[2]);
    u[4 * q + 1] = _mm512_unpackhi_epi64(a[0], a[2]);
    u[4 * q + 2] = _mm512_unpacklo_epi64(a[1], a[3]);
    u[4 * q + 3] = _mm512_unpackhi_epi64(a[1], a[3]);
  }
  // Column 4L + j: lane L of u[j], u[4 + j], u[8 + j], u[12 + j] (a 4 x 4 transpose of lanes).
  for (int j = 0; j < 4; ++j) {
    const __m512i a = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44), b = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xee);
    const __m512i c = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44), d = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xee);
    r[j] = _mm512_shuffle_i32x4(a, c, 0x88);
    r[4 + j] = _mm512_shuffle_i32x4(a, c, 0xdd);
    r[8 + j] = _mm512_shuffle_i32x4(b, d, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(b, d, 0xdd);
  }
}

// x [batch][cols] -> the B blocks above, in the calling thread's scratch.
const uint32_t* pack_activations(const float* x, size_t batch, size_t cols, size_t groups) {
  const size_t steps = cols / k_step;
  auto* xp = reinterpret_cast<uint32_t*>(thread_scratch(groups * steps * block_words));
  for (size_t g = 0; g < groups; ++g) {
    for (size_t s = 0; s < steps; ++s) {
      __m512i v[16];
      for (size_t m = 0; m < tile_dim; ++m) {
        const size_t row = g * tile_dim + m;
        if (row >= batch) {
          v[m] = _mm512_setzero_si512();
          continue;
        }
        const float* p = x + row * cols + s * k_step;
        v[m] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(p + 16), _mm512_loadu_ps(p));
      }
      transpose16(v);
      uint32_t* block = xp + (s * groups + g) * block_words;
      for (size_t p = 0; p < tile_dim; ++p) _mm512_storeu_si512(block + p * tile_dim, v[p]);
    }
  }
  return xp;
}

// c [16 weight rows][16 activation rows] -> y[(16g + m) * y_stride + r0 + n] for the rows that exist.
void store_outputs(const float* c, size_t g, size_t batch, size_t r0, size_t n_rows, float* y, size_t y_stride) {
  __m512i v[16];
  for (int n = 0; n < 16; ++n) v[n] = _mm512_loadu_si512(c + n * tile_dim);
  transpose16(v);
  const __mmask16 keep = static_cast<__mmask16>((1u << n_rows) - 1);
  const size_t m_end = std::min(tile_dim, batch - g * tile_dim);
  for (size_t m = 0; m < m_end; ++m) {
    _mm512_mask_storeu_ps(y + (g * tile_dim + m) * y_stride + r0, keep, _mm512_castsi512_ps(v[m]));
  }
}

// Tile numbers are part of the instruction (the intrinsics paste them into the assembly), so
// each accumulator is spelled out: T is a literal 0..5.
#define MOAT_AMX_STEP(T)                                 \
  if constexpr (G > (T)) {                               \
    _tile_loadd(7, b + (T) * block_words, 64);           \
    _tile_dpbf16ps(T, 6, 7);                             \
  }
#define MOAT_AMX_ZERO(T) \
  if constexpr (G > (T)) _tile_zero(T);
#define MOAT_AMX_STORE(T)                                                     \
  if constexpr (G > (T)) {                                                    \
    _tile_stored(T, c, 64);                                                   \
    store_outputs(c, g0 + (T), batch, r0, n_rows, y, y_stride);               \
  }

// Decoded rows wt [16][cols] by activation groups [g0, g0 + G).
template <size_t G>
void amx_groups(const uint16_t* wt, size_t cols, const uint32_t* xp, size_t groups, size_t g0, size_t batch, size_t r0,
                size_t n_rows, float* y, size_t y_stride) {
  static_assert(G >= 1 && G <= max_groups);
  MOAT_AMX_ZERO(0) MOAT_AMX_ZERO(1) MOAT_AMX_ZERO(2) MOAT_AMX_ZERO(3) MOAT_AMX_ZERO(4) MOAT_AMX_ZERO(5)
  const size_t steps = cols / k_step;
  for (size_t s = 0; s < steps; ++s) {
    _tile_loadd(6, wt + s * k_step, cols * sizeof(uint16_t));
    const uint32_t* b = xp + (s * groups + g0) * block_words;
    MOAT_AMX_STEP(0) MOAT_AMX_STEP(1) MOAT_AMX_STEP(2) MOAT_AMX_STEP(3) MOAT_AMX_STEP(4) MOAT_AMX_STEP(5)
  }
  alignas(64) float c[tile_dim * tile_dim];
  MOAT_AMX_STORE(0) MOAT_AMX_STORE(1) MOAT_AMX_STORE(2) MOAT_AMX_STORE(3) MOAT_AMX_STORE(4) MOAT_AMX_STORE(5)
}

#undef MOAT_AMX_STEP
#undef MOAT_AMX_ZERO
#undef MOAT_AMX_STORE

void gemm_nf4_amx_tiles(const uint8_t* packed, const float* absmax, size_t cols, const float* x, size_t batch, float* y,
                        size_t y_stride, size_t row_begin, size_t row_end) {
  if (row_begin >= row_end || batch == 0) return;
  const size_t groups = (batch + tile_dim - 1) / tile_dim;
  const uint32_t* xp = pack_activations(x, batch, cols, groups);
  auto* wt = reinterpret_cast<uint16_t*>(thread_scratch_weights(tile_dim * cols / 2));
  load_tile_config();  // this thread's tile state; released below
  for (size_t r0 = row_begin; r0 < row_end; r0 += tile_dim) {
    const size_t n_rows = std::min(tile_dim, row_end - r0);
    decode_rows_bf16(packed, absmax, cols, r0, n_rows, wt);
    if (n_rows < tile_dim) std::memset(wt + n_rows * cols, 0, (tile_dim - n_rows) * cols * sizeof(uint16_t));
    for (size_t g0 = 0; g0 < groups; g0 += max_groups) {
      switch (std::min(max_groups, groups - g0)) {
        case 1: amx_groups<1>(wt, cols, xp, groups, g0, batch, r0, n_rows, y, y_stride); break;
        case 2: amx_groups<2>(wt, cols, xp, groups, g0, batch, r0, n_rows, y, y_stride); break;
        case 3: amx_groups<3>(wt, cols, xp, groups, g0, batch, r0, n_rows, y, y_stride); break;
        case 4: amx_groups<4>(wt, cols, xp, groups, g0, batch, r0, n_rows, y, y_stride); break;
        case 5: amx_groups<5>(wt, cols, xp, groups, g0, batch, r0, n_rows, y, y_stride); break;
        default: amx_groups<6>(wt, cols, xp, groups, g0, batch, r0, n_rows, y, y_stride); break;
      }
    }
  }
  _tile_release();
}

// Linux: a process must ask before its threads may use tile data (the XTILEDATA state
// component, 18); granted once, it holds for every thread of the process.
constexpr int arch_req_xcomp_perm = 0x1023;
constexpr int xfeature_xtiledata = 18;

const char* amx_unavailable() {
  if (const char* v = std::getenv("MOAT_CPU_AMX"); v != nullptr && std::strcmp(v, "0") == 0) return "MOAT_CPU_AMX=0";
  __builtin_cpu_init();
  const bool cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("amx-tile") &&
                   __builtin_cpu_supports("amx-bf16");
  if (!cpu) return "this CPU has no AMX-BF16 (or no AVX512_BF16)";
  if (syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) != 0) {
    return "the kernel refused tile data to this process (arch_prctl ARCH_REQ_XCOMP_PERM)";
  }
  return nullptr;
}

}  // namespace

const char* nf4_amx_unavailable() {
  static const char* const why = amx_unavailable();
  return why;
}

nf4_gemm_fn nf4_amx_gemm() { return nf4_amx_unavailable() == nullptr ? gemm_nf4_amx_tiles : nullptr; }

}  // namespace moat::cpu::quant::detail

#else
namespace moat::cpu::quant::detail {
const char* nf4_amx_unavailable() { return "this build has no AMX tiles (compiler without -mamx-tile -mamx-bf16)"; }
nf4_gemm_fn nf4_amx_gemm() { return nullptr; }
}  // namespace moat::cpu::quant::detail
#endif

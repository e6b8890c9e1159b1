// The NF4 matrix product on AMX tiles for batches of 8 and more (compiled with -mamx-tile
// -mamx-bf16 besides the AVX-512, AVX512_BF16 and AVX512_VBMI flags; used only where the CPU
// has them all and the kernel lets this process use tile data, see nf4_amx_gemm()).
//
// The same products as the bf16 tiles (kernels_nf4_bf16.cpp): weights level * absmax rounded
// to bf16, activations rounded to bf16, exact products summed in f32. Only the summation order
// differs, so the bf16 tiles' error bound holds. tdpbf16ps does 16 x 16 x 32 MACs an
// instruction, so the arithmetic is nearly free and decoding NF4 to bf16 is what costs.
//
// Per call, on the calling thread:
//  - activations x [batch][cols] -> bf16 B tiles, one 1 KiB block per k-step s (32 values) and
//    group g of 16 activation rows, the groups of one step side by side:
//      xp[(s * groups + g) * 256 + p * 16 + m] = bf16 pair (x[16g+m][k(s,2p)], x[16g+m][k(s,2p+1)])
//    (rows past the batch are zero), where k(s, i) is the column at position i of k-step s:
//    not 32s + i but the order decode_block gives the weights (within each NF4 block of 64:
//    step 2b holds elements 4j + 1 then 4j, step 2b + 1 elements 4j + 3 then 4j + 2), which
//    spares the decode a permute per 32 weights;
//  - per pass over R blocks of 16 weight rows (rows past row_end zero) and G groups (see
//    amx_pass for the shapes): 64 columns at a time, decode the rows into a small chunk that
//    stays in L1 ([R * 16][64] bf16), then for its two k-steps s
//      C_rg (16 x 16 f32) += A (rows of block r, columns k(s, 0..31)) . B (block (s, g))
//    so C_rg[n][m] = weight row 16r + n . activation row 16g + m, transposed into y.
// Decoding runs on the vector ports while the tile unit works, so 8 to 16 activation rows
// cost about what decoding alone does, 64 about twice that (2048 x 2048, one thread, cache
// warm: 0.18 ms at 8 rows, 0.25 at 32; the bf16 tiles 1.1 at 8, on a loaded machine). B tiles come
// from L2 (all k-steps of the batch); more than 6 groups (96 rows) decode the rows again per
// pass of 6. In a decode step the weights stream from memory, and what sets the speed is
// then the prefetch of the next pass's rows (weight_rows::prefetch_next): without it, batch 8
// took about twice the time of batch 1 on the same matrix, with it about the same.
// Every output is the same chain of tdpbf16ps over the same k-steps whatever the batch, the
// other rows of the batch or the row split (blocks are zero-padded, never shortened). The
// column order inside a k-step changes only the order of the f32 sums (the rounding of every
// weight and activation to bf16 is as before), and it is fixed by cols alone.
#include "cpu/quant/kernel_tables.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__) && \
    defined(__AVX512VBMI__) && defined(__AMX_TILE__) && defined(__AMX_BF16__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cpu/quant/nf4_bf16_decode.inc"

namespace moat::cpu::quant::detail {
namespace {

#include "cpu/quant/amx_tiles.inc"

// Weight rows per A tile, activation rows per B tile, pairs per tile row.
constexpr size_t tile_dim = 16;
constexpr size_t k_step = 32;  // bf16 values per tile row (64 bytes)
constexpr size_t block_words = tile_dim * tile_dim;  // one packed B tile in 32-bit pairs
constexpr size_t max_groups = 6;  // accumulators tmm0..5 beside A (tmm6) and B (tmm7)

// Palette 1, every tile 16 rows of 64 bytes.
void configure_tiles() {
  tile_config c;
  for (int t = 0; t < 8; ++t) {
    c.colsb[t] = 64;
    c.rows[t] = tile_dim;
  }
  load_tile_config(c);
}

// The index (into the 64 bf16 values of an NF4 block: 0..31 in the first register, 32..63 in
// the second) of tile position i of k-step h (0 or 1), in the order decode_block puts the
// weights: step 0 holds elements 4j + 1 then 4j (j = 0..15), step 1 elements 4j + 3 then 4j + 2.
inline __m512i step_order(int h) {
  alignas(64) uint16_t idx[32];
  for (int i = 0; i < 32; ++i)
    idx[i] = static_cast<uint16_t>(4 * (i % 16) + 2 * h + (i < 16 ? 1 : 0));
  return _mm512_load_si512(idx);
}

// x [batch][cols] -> the B blocks above, in the calling thread's scratch: per NF4 block of 64
// columns and activation row, the 64 values rounded to bf16, then put in the order of the
// block's two k-steps.
const uint32_t* pack_activations(const float* x, size_t batch, size_t cols, size_t groups) {
  const size_t steps = cols / k_step;
  auto* xp = align64<uint32_t>(thread_scratch(groups * steps * block_words + 15));
  const __m512i order0 = step_order(0), order1 = step_order(1);
  for (size_t g = 0; g < groups; ++g) {
    for (size_t s = 0; s < steps; s += 2) {
      __m512i v[16], second[16];
      for (size_t m = 0; m < tile_dim; ++m) {
        const size_t row = g * tile_dim + m;
        if (row >= batch) {
          v[m] = second[m] = _mm512_setzero_si512();
          continue;
        }
        const float* p = x + row * cols + s / 2 * 64;
        const __m512i lo =
            (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(p + 16), _mm512_loadu_ps(p));
        const __m512i hi =
            (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(p + 48), _mm512_loadu_ps(p + 32));
        v[m] = _mm512_permutex2var_epi16(lo, order0, hi);
        second[m] = _mm512_permutex2var_epi16(lo, order1, hi);
      }
      for (size_t h = 0; h < 2; ++h) {
        if (h == 1) std::memcpy(v, second, sizeof v);
        transpose16(v);
        uint32_t* block = xp + ((s + h) * groups + g) * block_words;
        for (size_t p = 0; p < tile_dim; ++p) _mm512_storeu_si512(block + p * tile_dim, v[p]);
      }
    }
  }
  return xp;
}

// NF4 block at flat element e (64 weights, 32 bytes) -> out [64] bf16 (level * absmax in f32,
// rounded to nearest even, as decode_block_bf16), in the k order of the tiles: the 32 bytes
// read as 16 words, word j = bytes 2j, 2j + 1 = nibbles (low first) of elements 4j + 1, 4j,
// 4j + 3, 4j + 2. One broadcast load puts the 16 words in both halves of a register; a shift
// per half (0 | 4, then 8 | 12) brings a nibble to bits 0..3 and vpermw looks it up in the
// block's 16 values, repeated so the index's bit 4 (the next nibble's bit 0) does not matter:
//   out[0..31]  = elements 4j + 1 (j = 0..15), then 4j;   out[32..63] = 4j + 3, then 4j + 2.
// Two shifts and two vpermw per 64 weights, against two vpermb, two shifts and two vpermw in
// element order (decode_block_bf16), and no permute to spread the bytes.
inline void decode_block(const uint8_t* packed, const float* absmax, size_t e, __m512 lut,
                         uint16_t* out) {
  const __m512i table = block_table_bf16(absmax, e, lut);
  const __m512i words =
      _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(packed + e / 2)));
  const __m512i shift_a = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  const __m512i shift_b = _mm512_inserti64x4(_mm512_set1_epi16(8), _mm256_set1_epi16(12), 1);
  _mm512_storeu_si512(out, _mm512_permutexvar_epi16(_mm512_srlv_epi16(words, shift_a), table));
  _mm512_storeu_si512(out + 32, _mm512_permutexvar_epi16(_mm512_srlv_epi16(words, shift_b), table));
}

// c [16 weight rows][16 activation rows] -> y[(16g + m) * y_stride + r0 + n] for the rows that
// exist.
void store_outputs(const float* c, size_t g, size_t batch, size_t r0, size_t n_rows, float* y,
                   size_t y_stride) {
  __m512i v[16];
  for (int n = 0; n < 16; ++n) v[n] = _mm512_loadu_si512(c + n * tile_dim);
  transpose16(v);
  const __mmask16 keep = static_cast<__mmask16>((1u << n_rows) - 1);
  const size_t m_end = std::min(tile_dim, batch - g * tile_dim);
  for (size_t m = 0; m < m_end; ++m) {
    _mm512_mask_storeu_ps(y + (g * tile_dim + m) * y_stride + r0, keep, _mm512_castsi512_ps(v[m]));
  }
}

// A software prefetch into L1 that the compiler keeps. GCC 12 treats __builtin_prefetch (and
// so _mm_prefetch) as free of side effects: a helper whose only effect is prefetching is found
// "pure", and its calls, whose result nobody uses, are deleted (what happened to this file's
// prefetches until 2026-11-25: none was in the binary, and batch 8 streamed at half the speed
// of batch 1). An asm volatile cannot be deleted.
inline void prefetch_l1(const void* p) {
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
}

// The weight rows of one pass: R * 16 rows from r0, n_rows of them real (the rest zero),
// decoded 64 columns (one NF4 block, two k-steps) at a time into a small buffer that stays in
// L1: chunk [R * 16][64] bf16, rows 128 bytes apart (distinct cache sets). The next pass's
// rows (next_rows of them, 0 after the caller's last) are prefetched meanwhile.
struct weight_rows {
  const uint8_t* packed;
  const float* absmax;
  size_t cols;
  size_t r0;
  size_t n_rows;
  size_t all_rows;
  size_t next_rows;
  bool first;

  // Up to 64 rows advancing 32 bytes a chunk each are too many slow streams for the hardware
  // prefetchers, so while decoding column c of these rows, ask for part c / 64 (of cols / 64)
  // of the next rows' codes and absmax values, each in address order (they are contiguous).
  void prefetch_next(size_t c) const {
    const size_t parts = cols / 64, part = c / 64;
    const size_t next = r0 + n_rows;
    prefetch_part(packed + next * cols / 2, next_rows * cols / 2, parts, part);
    prefetch_part(absmax + next * parts, next_rows * parts * sizeof(float), parts, part);
    if (first) prefetch_ahead(c);
  }

  // The caller's first pass had no pass before it to prefetch its rows: ask for them here, a
  // few chunks ahead of the decode, row by row (a 64-byte line holds two chunks of a row).
  void prefetch_ahead(size_t c) const {
    constexpr size_t ahead = 256;  // columns: two lines of each row
    if (c == 0) {
      prefetch_part(absmax + r0 * (cols / 64), n_rows * (cols / 64) * sizeof(float), 1, 0);
      for (size_t i = 0; i < n_rows; ++i) {
        for (size_t k = 0; k < ahead && k < cols; k += 128)
          prefetch_l1(packed + ((r0 + i) * cols + k) / 2);
      }
    }
    if (c % 128 != 0 || c + ahead >= cols) return;
    for (size_t i = 0; i < n_rows; ++i) prefetch_l1(packed + ((r0 + i) * cols + c + ahead) / 2);
  }

  // Part `part` of `parts` of the bytes [p, p + bytes), by cache lines.
  static void prefetch_part(const void* p, size_t bytes, size_t parts, size_t part) {
    const auto* base = static_cast<const uint8_t*>(p);
    const size_t per = ((bytes + parts - 1) / parts + 63) & ~size_t{63};
    const size_t end = std::min(bytes, (part + 1) * per);
    for (size_t i = part * per; i < end; i += 64) prefetch_l1(base + i);
  }

  void decode(size_t c, uint16_t* chunk) const {
    const __m512 lut = _mm512_loadu_ps(nf4_levels());
    for (size_t i = 0; i < n_rows; ++i) {
      const size_t e = (r0 + i) * cols + c;
      decode_block(packed, absmax, e, lut, chunk + i * 64);
    }
    for (size_t i = n_rows; i < all_rows; ++i) {
      _mm512_storeu_si512(chunk + i * 64, _mm512_setzero_si512());
      _mm512_storeu_si512(chunk + i * 64 + 32, _mm512_setzero_si512());
    }
  }
};

constexpr size_t chunk_stride = 64 * sizeof(uint16_t);  // bytes between rows of a decoded chunk

// What one call multiplies: the packed activations and where the outputs go.
struct amx_call {
  size_t cols;
  const uint32_t* xp;
  size_t groups;
  size_t batch;
  float* y;
  size_t y_stride;
};

// tdpbf16ps has a latency of several times its issue interval, so a pass keeps a few
// accumulators independent, and loads each B tile (from L2: all k-steps of the batch) as few
// times as the 8 tile registers allow: R blocks of 16 weight rows by G groups of 16 activation
// rows.
//   G == 1:         C_r = tmm r (r < R <= 4), A reloaded in tmm6 per r, B in tmm7 once a step
//   R == 2, G == 2: C = tmm0..3 (r0 g0, r0 g1, r1 g0, r1 g1), A in tmm4/5, B in tmm6/7
//   R == 1:         C_g = tmm g (g < G <= 6), A in tmm6 once a step, B reloaded in tmm7 per g
// Every output is still the one chain of tdpbf16ps over k-steps in order, whatever the shape.
template <size_t R, size_t G>
constexpr size_t tile_row(size_t t) {
  return R == 2 && G == 2 ? t / 2 : G == 1 ? t : 0;
}
template <size_t R, size_t G>
constexpr size_t tile_group(size_t t) {
  return R == 2 && G == 2 ? t % 2 : G == 1 ? 0 : t;
}

// Tile numbers are part of the instruction (the intrinsics paste them into the assembly), so
// each is spelled out as a literal.
#define MOAT_AMX_ZERO(T) \
  if constexpr (R * G > (T)) _tile_zero(T);
#define MOAT_AMX_ROW(T)                                  \
  if constexpr (R > (T)) {                               \
    _tile_loadd(6, a + (T)*tile_dim * 64, chunk_stride); \
    _tile_dpbf16ps(T, 6, 7);                             \
  }
#define MOAT_AMX_GROUP(T)                    \
  if constexpr (G > (T)) {                   \
    _tile_loadd(7, b + (T)*block_words, 64); \
    _tile_dpbf16ps(T, 6, 7);                 \
  }
#define MOAT_AMX_STORE(T)                                                                \
  if constexpr (R * G > (T)) {                                                           \
    constexpr size_t r = tile_row<R, G>(T), g = tile_group<R, G>(T);                     \
    if (w.n_rows > r * tile_dim) {                                                       \
      _tile_stored(T, c, 64);                                                            \
      store_outputs(c, g0 + g, call.batch, w.r0 + r * tile_dim,                          \
                    std::min(tile_dim, w.n_rows - r * tile_dim), call.y, call.y_stride); \
    }                                                                                    \
  }

// Weight rows w (R * 16 of them) by activation groups [g0, g0 + G), decoding as it goes into
// two alternating chunks (chunks: 2 * R * 16 * 64 bf16).
template <size_t R, size_t G>
void amx_pass(const amx_call& call, const weight_rows& w, size_t g0, uint16_t* chunks) {
  static_assert((G == 1 && R >= 1 && R <= 4) || (R == 2 && G == 2) ||
                (R == 1 && G >= 1 && G <= max_groups));
  MOAT_AMX_ZERO(0)
  MOAT_AMX_ZERO(1) MOAT_AMX_ZERO(2) MOAT_AMX_ZERO(3) MOAT_AMX_ZERO(4)
      MOAT_AMX_ZERO(5) constexpr size_t chunk_values = R * tile_dim * 64;
  for (size_t col = 0; col < call.cols; col += 64) {
    uint16_t* chunk = chunks + (col / 64 % 2) * chunk_values;
    w.prefetch_next(col);
    w.decode(col, chunk);
    for (size_t h = 0; h < 2; ++h) {
      const size_t s = col / k_step + h;
      const uint16_t* a = chunk + h * k_step;
      const uint32_t* b = call.xp + (s * call.groups + g0) * block_words;
      if constexpr (R == 2 && G == 2) {
        _tile_loadd(4, a, chunk_stride);
        _tile_loadd(5, a + tile_dim * 64, chunk_stride);
        _tile_loadd(6, b, 64);
        _tile_loadd(7, b + block_words, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      } else if constexpr (G == 1) {
        _tile_loadd(7, b, 64);
        MOAT_AMX_ROW(0) MOAT_AMX_ROW(1) MOAT_AMX_ROW(2) MOAT_AMX_ROW(3)
      } else {
        _tile_loadd(6, a, chunk_stride);
        MOAT_AMX_GROUP(0)
        MOAT_AMX_GROUP(1) MOAT_AMX_GROUP(2) MOAT_AMX_GROUP(3) MOAT_AMX_GROUP(4) MOAT_AMX_GROUP(5)
      }
    }
  }
  alignas(64) float c[tile_dim * tile_dim];
  MOAT_AMX_STORE(0)
  MOAT_AMX_STORE(1) MOAT_AMX_STORE(2) MOAT_AMX_STORE(3) MOAT_AMX_STORE(4) MOAT_AMX_STORE(5)
}

#undef MOAT_AMX_ZERO
#undef MOAT_AMX_ROW
#undef MOAT_AMX_GROUP
#undef MOAT_AMX_STORE

// Blocks of 16 weight rows per pass for `rows_left` rows and `groups` activation groups.
size_t row_blocks(size_t rows_left, size_t groups) {
  const size_t need = (rows_left + tile_dim - 1) / tile_dim;
  if (groups == 1) return std::min<size_t>(4, need);
  if (groups == 2) return std::min<size_t>(2, need);
  return 1;
}

// All passes over weight rows w. More than 6 groups take several passes, each decoding the
// rows again (long prefills; the arithmetic per decoded value grows with the batch).
void amx_rows(const amx_call& call, const weight_rows& w, uint16_t* chunks) {
  switch (w.all_rows / tile_dim) {
    case 1:
      break;
    case 2:
      if (call.groups == 2) return amx_pass<2, 2>(call, w, 0, chunks);
      return amx_pass<2, 1>(call, w, 0, chunks);
    case 3:
      return amx_pass<3, 1>(call, w, 0, chunks);
    default:
      return amx_pass<4, 1>(call, w, 0, chunks);
  }
  const size_t passes = (call.groups + max_groups - 1) / max_groups;
  size_t g0 = 0;
  for (size_t p = 0; p < passes; ++p) {
    const size_t g = (call.groups - g0) / (passes - p);  // evenly sized passes
    switch (g) {
      case 1:
        amx_pass<1, 1>(call, w, g0, chunks);
        break;
      case 2:
        amx_pass<1, 2>(call, w, g0, chunks);
        break;
      case 3:
        amx_pass<1, 3>(call, w, g0, chunks);
        break;
      case 4:
        amx_pass<1, 4>(call, w, g0, chunks);
        break;
      case 5:
        amx_pass<1, 5>(call, w, g0, chunks);
        break;
      default:
        amx_pass<1, 6>(call, w, g0, chunks);
        break;
    }
    g0 += g;
  }
}

void gemm_nf4_amx_tiles(const uint8_t* packed, const float* absmax, size_t cols, const float* x,
                        size_t batch, float* y, size_t y_stride, size_t row_begin, size_t row_end) {
  if (row_begin >= row_end || batch == 0) return;
  const size_t groups = (batch + tile_dim - 1) / tile_dim;
  const amx_call call{cols, pack_activations(x, batch, cols, groups), groups, batch, y, y_stride};
  // Two decoded chunks of up to 4 row blocks: 16 KiB.
  auto* chunks = align64<uint16_t>(thread_scratch_weights(4 * tile_dim * 64 + 15));
  configure_tiles();  // this thread's tile state; released below
  for (size_t r0 = row_begin; r0 < row_end;) {
    const size_t blocks = row_blocks(row_end - r0, groups);
    const size_t n_rows = std::min(blocks * tile_dim, row_end - r0);
    const size_t next_rows = std::min(blocks * tile_dim, row_end - r0 - n_rows);
    const weight_rows w{packed,    absmax,         cols, r0, n_rows, blocks * tile_dim,
                        next_rows, r0 == row_begin};
    amx_rows(call, w, chunks);
    r0 += w.n_rows;
  }
  _tile_release();
}

// Linux: a process must ask before its threads may use tile data (the XTILEDATA state
// component, 18); granted once, it holds for every thread of the process.
const char* amx_unavailable() {
  __builtin_cpu_init();
  const bool cpu = cpuid7_edx_has(cpuid_amx_bf16 | cpuid_amx_tile) && __builtin_cpu_supports("avx512f") &&
                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16") &&
                   __builtin_cpu_supports("avx512vbmi");
  return amx_permission_problem(cpu, "this CPU lacks AMX-TILE, AMX-BF16, AVX512_BF16 or AVX512_VBMI");
}

}  // namespace

const char* nf4_amx_unavailable() {
  static const char* const why = amx_unavailable();
  return why;
}

nf4_gemm_fn nf4_amx_gemm() {
  return nf4_amx_unavailable() == nullptr ? gemm_nf4_amx_tiles : nullptr;
}

}  // namespace moat::cpu::quant::detail

#else
namespace moat::cpu::quant::detail {
const char* nf4_amx_unavailable() {
  return "this build has no AMX tiles (compiler without -mamx-tile -mamx-bf16)";
}
nf4_gemm_fn nf4_amx_gemm() {
  return nullptr;
}
}  // namespace moat::cpu::quant::detail
#endif

// Weight layouts the kernels read, as plain C++ (no CUDA headers) so the scalar references and
// host tests share them. The layouts are exactly the engine's (backends/engine/quant/):
//
//   f16, bf16  data: [rows][cols] uint16
//   f32        data: [rows][cols] float (checkpoints stored in f32; tests against the CPU)
//   int8       data: [rows][cols] int8, scales: [rows] f32 (per output channel), or with
//              int8_group 32: [rows][cols/32] f32, a scale per 32 (GGUF Q8_0's blocks)
//   int4       data: [rows][int4_row_bytes(cols, group)] bytes, scales: [rows][groups] f32;
//              each group is group/32 sub-blocks of 16 bytes in Q4_0 order (byte j: element j
//              in the low nibble, element j + 16 in the high), value = scale * (nibble - 8)
//   nf4        data: the flat [rows*cols] tensor, two codes per byte, FIRST element in the HIGH
//              nibble, rows not padded; blocks of `blocksize` (64) flat elements, with the
//              double-quantized absmax: absmax[b] = absmax_map[absmax_codes[b]] *
//              absmax2[b / nested_blocksize] + absmax_offset, or a plain f32 absmax [blocks]
//              when absmax_codes is null; value = nf4_code[code] * absmax[b]
//
//   moat::kernels::gemv_weights w{weight_format::int4, rows, cols, q_dev, scales_dev};
//   w.group = 64;
//   moat::kernels::gemv(w, x_dev, n_tokens, y_dev, stream);   // kernels/gemv.cuh
//
// Every pointer is device memory for the kernels and host memory for the references.
#pragma once

#include <cstdint>

namespace moat::kernels {

enum class weight_format : uint8_t { f16, bf16, int8, int4, nf4, f32 };
inline constexpr int k_weight_formats = 6;

struct gemv_weights {
  weight_format format = weight_format::f16;
  int64_t rows = 0;  // out features
  int64_t cols = 0;  // in features
  const void* data = nullptr;
  const float* scales = nullptr;  // int8: [rows] or [rows][cols/32]; int4: [rows][ceil(cols/group)]
  int32_t group = 64;             // int4 group: 32, 64 or 128
  int32_t int8_group = 0;         // int8: 0 = a scale per row; 32 = a scale per 32 (cols % 32 == 0)
  // nf4 with double quantization
  const uint8_t* absmax_codes = nullptr;  // [ceil(rows*cols / blocksize)]; null: use `absmax`
  const float* absmax2 = nullptr;         // [ceil(blocks / nested_blocksize)]
  const float* absmax_map = nullptr;      // [256], the dynamic map
  float absmax_offset = 0.0f;
  int32_t blocksize = 64;
  int32_t nested_blocksize = 256;
  // nf4 without double quantization (or with absmax already rebuilt, as
  // engine::quant::collect_bnb_nf4 gives it): f32 [ceil(rows*cols / blocksize)].
  const float* absmax = nullptr;
};

// The 16 NF4 levels (bitsandbytes' table); the kernels keep a copy in constant memory.
inline constexpr float k_nf4_levels[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

inline int64_t int4_row_bytes(int64_t cols, int32_t group) { return (cols + group - 1) / group * group / 2; }
inline int64_t int4_row_groups(int64_t cols, int32_t group) { return (cols + group - 1) / group; }

enum class rope_pairs : uint8_t { rotate_half, adjacent };

// Sampling parameters per call, meaning what engine/sampling.h gives them: temperature below
// 1e-5 is greedy (argmax, lowest index on ties); top_k <= 0 or >= vocab disables top-k;
// min_p keeps probabilities >= min_p * the largest (0 = off); top_p >= 1 disables top-p, which
// applies to what top_k and min_p left. u: one uniform [0, 1)
// number per row (the host's seeded generator draws them, so seeds stay reproducible).
struct sampling_params {
  float temperature = 1.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
};

inline constexpr float k_greedy_temperature = 1e-5f;

// Decode attention over a paged KV cache. Pools: [n_blocks][block_size][n_kv_heads][head_dim]
// f32; block_tables: [n_seq][max_blocks] (physical block of each logical block);
// seq_lens: [n_seq] positions to attend (the current token's K/V already written);
// q, out: [n_seq][n_heads][head_dim]. A sequence of length 0 gets zeros.
// One query token per sequence (decode); the layout both the kernel and the reference take.
struct paged_attention_args {
  const float* q = nullptr;
  const float* k_pool = nullptr;
  const float* v_pool = nullptr;
  const int32_t* block_tables = nullptr;
  const int32_t* seq_lens = nullptr;
  float* out = nullptr;
  int32_t n_seq = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, block_size = 16, max_blocks = 0;
  float scale = 1.0f;
};

}  // namespace moat::kernels

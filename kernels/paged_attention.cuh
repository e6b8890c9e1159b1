// Decode attention over a paged KV cache (kernels/formats.h paged_attention_args): one block
// per (head, sequence), 4 warps splitting the positions, each warp an online softmax
// (running max, sum and weighted V in registers), the warps merged at the end. No limit on the
// context length and no score buffer. head_dim <= 256. KV pools are f32 for now.
//
//   paged_attention_args a{q, k_pool, v_pool, tables, lens, out, n_seq, 32, 8, 128, 16, max_blocks,
//                          1 / sqrtf(128)};
//   moat::kernels::paged_attention(a, stream);
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/formats.h"

namespace moat::kernels {

inline constexpr int k_attention_max_head_dim = 256;

cudaError_t paged_attention(const paged_attention_args& a, cudaStream_t stream);

}  // namespace moat::kernels

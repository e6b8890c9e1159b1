// Attention of one (token, KV head) unit over the f32 paged KV cache: the `group` query heads
// that share KV head kvh (GQA) score every position once, softmax, then sum V. The batched
// forward pass runs one call per unit; the whole unit is one function (compiled for AVX2 and
// baseline) so a 16-wide head does not pay a call per position for its K row, its dot and its
// V row.
//
//   attend_f32(kv, table, layer, kvh, pos + 1, q, group, 1 / sqrt(hd), att, max_ctx, out);
//
// Same bits as the per-position path (scores by dot(), softmax(), V sums by axpy()): the same
// lanes and order for each score and each output element.
#pragma once

#include <cstdint>

#include "cpu/paged_kv.h"

namespace moat::cpu {

// q: [group][head_dim] (query heads kvh * group ...), out: [group][head_dim] (overwritten).
// table: the sequence's block table (position p is offset p % block_size of block
// table[p / block_size]); n: positions attended, [0, n). att: scratch [group][att_stride],
// att_stride >= n. kv must be f32.
void attend_f32(const paged_kv& kv, const int32_t* table, int32_t layer, int32_t kvh, int32_t n,
                const float* q, int32_t group, float scale, float* att, int64_t att_stride,
                float* out);

}  // namespace moat::cpu

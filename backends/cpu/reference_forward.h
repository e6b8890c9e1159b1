// The reference forward pass: one token at a time, plain loops, sums in sequence, as llama2.c's
// run.c does. It is the yardstick for the batched path and for new kernels, not the fast path.
//
//   reference_forward(mv, kv, table, token, pos, logits, nullptr);   // logits: [vocab]
//   reference_forward(mv, pool, slot, token, pos, logits, nullptr);  // contiguous kv_pool
#pragma once

#include <cstdint>
#include <span>

#include "cpu/model_view.h"
#include "cpu/paged_kv.h"

namespace moat::cpu {

// Runs `token` at position `pos` of the sequence whose block table is `blocks`, writing its K/V
// into the table's block and attending over positions [0, pos] through the table. Writes
// [vocab] logits when `logits` is not null and the [hidden] state after the final RMSNorm when
// `hidden` is not null. The table must cover position pos (the runner checks).
void reference_forward(const model_view& mv, paged_kv& kv, std::span<const int32_t> blocks, int32_t token,
                       int32_t pos, float* logits, float* hidden);

// The same over a contiguous kv_pool slot (the tensor-parallel tests compare against it).
void reference_forward(const model_view& mv, kv_pool& kv, int32_t slot, int32_t token, int32_t pos,
                       float* logits, float* hidden);

}  // namespace moat::cpu

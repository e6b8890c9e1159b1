// The reference forward pass: one token at a time, plain loops, sums in sequence, as llama2.c's
// run.c does. It is the yardstick for the batched path and for new kernels, not the fast path.
//
//   reference_forward(mv, kv, slot, token, pos, logits, nullptr);   // logits: [vocab]
#pragma once

#include <cstdint>

#include "cpu/model_view.h"

namespace moat::cpu {

// Runs `token` at position `pos` of `slot`, writing its K/V into the slot and attending over
// positions [0, pos]. Writes [vocab] logits when `logits` is not null and the [hidden] state
// after the final RMSNorm when `hidden` is not null.
void reference_forward(const model_view& mv, kv_pool& kv, int32_t slot, int32_t token, int32_t pos,
                       float* logits, float* hidden);

}  // namespace moat::cpu

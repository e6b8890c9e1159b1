// model_runner: the forward pass as the scheduler sees it. One implementation per device
// (backends/cpu: make_cpu_runner; later backends/cuda).
//
//   auto runner = moat::cpu::make_cpu_runner(model, {.threads = 0, .kv_cache_mb = 256});
//   int slot = 0;                                        // the scheduler's choice, < n_slots()
//   std::vector<int32_t> prompt = {1, 403, 407};
//   moat::engine::forward_item items[] = {{slot, prompt, /*start_pos=*/0, /*all_logits=*/false}};
//   std::vector<float> logits(runner->logits_rows(items) * runner->config().vocab_size);
//   runner->forward(items, logits);                      // logits of the last prompt token
//   int32_t next = argmax(logits);
//   moat::engine::forward_item step[] = {{slot, {&next, 1}, 3, false}};
//   runner->forward(step, logits);                       // one decode step
//
// KV cache: contiguous per-sequence slots. The runner allocates n_slots() slots up front from a
// pool bounded in bytes (kv_cache_mb); each slot holds, for K and for V,
//   [n_layers][max_ctx][n_kv_heads * head_dim] floats,
// so a slot costs kv_bytes_per_token() * max_ctx() bytes. A slot has no owner inside the runner:
// the scheduler decides which sequence uses which slot, and which prefix of it is valid. A
// forward item writes K/V for positions [start_pos, start_pos + tokens.size()) into its slot and
// attends over [0, start_pos + tokens.size()) of the same slot — whatever the slot held before
// start_pos is taken as that sequence's history. Reusing a slot needs no clearing: start at 0.
//
// Threading: one caller at a time (the scheduler's step thread); the runner uses its own worker
// threads inside a call. Errors (bad slot, positions past max_ctx, token ids out of range) throw
// model_error before any slot is modified.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/model_config.h"
#include "engine/model_error.h"

namespace moat::engine {

struct forward_item {
  int32_t slot = 0;                   // 0 <= slot < n_slots()
  std::span<const int32_t> tokens;    // >= 1 token; a prefill chunk or one decode token
  int32_t start_pos = 0;              // position of tokens[0]; start_pos + size <= max_ctx()
  bool all_logits = false;            // logits for every token (prompt logprobs) or only the last
};

class model_runner {
 public:
  virtual ~model_runner() = default;

  virtual const model_config& config() const = 0;
  virtual int32_t n_slots() const = 0;
  virtual int32_t max_ctx() const = 0;  // positions per slot
  // K and V bytes one token occupies across all layers: 2 * n_layers * kv_dim * sizeof(float).
  virtual size_t kv_bytes_per_token() const = 0;

  // Rows of logits forward() writes: per item, tokens.size() if all_logits else 1.
  static size_t logits_rows(std::span<const forward_item> items) {
    size_t rows = 0;
    for (const auto& it : items) rows += it.all_logits ? it.tokens.size() : 1;
    return rows;
  }

  // Runs the batch (all items in one set of batched matmuls). `logits` is
  // [logits_rows(items)][vocab_size] floats, rows in item order then token order; it must have
  // at least that many elements. Items must name distinct slots.
  virtual void forward(std::span<const forward_item> items, std::span<float> logits) = 0;

  // For embeddings: like forward (K/V are written to the slots the same way) but returns the
  // hidden state after the final RMSNorm for every token of every item:
  // `hidden` is [sum of tokens.size()][hidden_size] floats. all_logits is ignored.
  virtual void hidden_states(std::span<const forward_item> items, std::span<float> hidden) = 0;

  // Copies positions [0, n_tokens) of slot `from` into slot `to` (n > 1 choices share a prompt).
  virtual void copy_slot(int32_t from, int32_t to, int32_t n_tokens) = 0;
};

}  // namespace moat::engine

// model_runner: the forward pass as the scheduler sees it. One implementation per device
// (backends/cpu: make_cpu_runner; backends/cuda: make_cuda_runner).
//
//   auto runner = moat::cpu::make_cpu_runner(model, {.threads = 0, .kv_cache_mb = 256});
//   std::vector<int32_t> table = {5, 9};                 // the scheduler's blocks, < n_blocks()
//   std::vector<int32_t> prompt = {1, 403, 407};
//   moat::engine::forward_item items[] = {{.tokens = prompt, .start_pos = 0, .blocks = table}};
//   std::vector<float> logits(runner->logits_rows(items) * runner->config().vocab_size);
//   runner->forward(items, logits);                      // logits of the last prompt token
//   int32_t next = argmax(logits);
//   moat::engine::forward_item step[] = {{.tokens = {&next, 1}, .start_pos = 3, .blocks = table}};
//   runner->forward(step, logits);                       // one decode step
//
// KV cache: a paged pool. The runner owns n_blocks() blocks of block_size() positions each,
// sized from a byte bound (kv_cache_mb). A block has no owner inside the runner: the scheduler
// (engine/kv_cache/block_pool.h) decides which sequence uses which blocks, shares full blocks
// between sequences with a common prefix, and knows which positions are valid. A forward item
// carries its sequence's block table: position p lives in block blocks[p / block_size()] at
// offset p % block_size(). The item writes K/V for positions [start_pos, start_pos +
// tokens.size()) and attends over [0, start_pos + tokens.size()) through the table; whatever
// the blocks held before start_pos is that sequence's history. A sequence that grows appends a
// block to its table: nothing is copied or reallocated.
//
// Legacy slot addressing (tests and tools written before the pool was paged): an item with an
// empty `blocks` names `slot` instead, which means the fixed table {slot * B, ..., slot * B +
// B - 1} with B = blocks_per_sequence(). n_slots() = n_blocks() / B. Do not mix the two
// addressings on one runner: slot s and the explicit tables use the same blocks.
//
// Host KV store (optional; vLLM's swap space): a runner may keep host_blocks() more blocks in
// host memory (options.host_kv_mb). The scheduler owns their bookkeeping as it owns the device
// blocks': when the device pool runs out it moves a preempted sequence's blocks out with
// swap_out and back, into fresh device blocks, with swap_in, instead of recomputing them. A
// runner without a store keeps the defaults (host_blocks() == 0, the hooks throw) and the
// scheduler recomputes.
//
//   std::vector<moat::engine::block_move> moves = {{.device = 7, .host = 0}, {.device = 3, .host = 1}};
//   runner->swap_out(moves);   // device blocks 7 and 3 may be reused once this returns
//   ... later, into whatever device blocks are free then:
//   moves = {{.device = 12, .host = 0}, {.device = 13, .host = 1}};
//   runner->swap_in(moves);
//
// Threading: one caller at a time (the scheduler's step thread); the runner uses its own worker
// threads inside a call. Errors (a bad block id, a table too short for the positions, positions
// past max_ctx, token ids out of range, two items writing one block) throw model_error before
// any block is modified.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "engine/model_config.h"
#include "engine/model_error.h"

namespace moat::engine {

struct forward_item {
  int32_t slot = -1;                  // legacy addressing, used only when `blocks` is empty
  std::span<const int32_t> tokens;    // >= 1 token; a prefill chunk or one decode token
  int32_t start_pos = 0;              // position of tokens[0]; start_pos + size <= max_ctx()
  bool all_logits = false;            // logits for every token (prompt logprobs) or only the last
  // The sequence's block table; at least ceil((start_pos + tokens.size()) / block_size())
  // entries, each < n_blocks(). Blocks written by this item (those holding positions >=
  // start_pos) must not appear in another item's writes in the same call.
  std::span<const int32_t> blocks = {};
};

// One whole block (every layer, K and V, all block_size() positions) moved between the device
// pool (< n_blocks()) and the host store (< host_blocks()).
struct block_move {
  int32_t device = 0;
  int32_t host = 0;
};

class model_runner {
 public:
  virtual ~model_runner() = default;

  virtual const model_config& config() const = 0;
  virtual int32_t max_ctx() const = 0;     // positions a sequence may reach
  virtual int32_t n_blocks() const = 0;    // blocks in the KV pool
  virtual int32_t block_size() const = 0;  // positions per block
  // K and V bytes one token occupies across all layers (2 * n_layers * kv_dim * sizeof(float)
  // for f32 KV; less for int8 KV).
  virtual size_t kv_bytes_per_token() const = 0;

  // Blocks a sequence of max_ctx() positions needs.
  int32_t blocks_per_sequence() const { return (max_ctx() + block_size() - 1) / block_size(); }
  // Legacy slots (see above): whole max_ctx() sequences the pool holds.
  int32_t n_slots() const { return n_blocks() / blocks_per_sequence(); }

  // Rows of logits forward() writes: per item, tokens.size() if all_logits else 1.
  static size_t logits_rows(std::span<const forward_item> items) {
    size_t rows = 0;
    for (const auto& it : items) rows += it.all_logits ? it.tokens.size() : 1;
    return rows;
  }

  // Runs the batch (all items in one set of batched matmuls). `logits` is
  // [logits_rows(items)][vocab_size] floats, rows in item order then token order; it must have
  // at least that many elements.
  virtual void forward(std::span<const forward_item> items, std::span<float> logits) = 0;

  // For embeddings: like forward (K/V are written to the blocks the same way) but returns the
  // hidden state after the final RMSNorm for every token of every item:
  // `hidden` is [sum of tokens.size()][hidden_size] floats. all_logits is ignored.
  virtual void hidden_states(std::span<const forward_item> items, std::span<float> hidden) = 0;

  // Copies positions [0, n_tokens) of block `from` into block `to` (n_tokens <= block_size()):
  // the copy-on-write of a partly filled block that two sequences share (n > 1 choices).
  virtual void copy_block(int32_t from, int32_t to, int32_t n_tokens) = 0;

  // Blocks of the host KV store; 0 = none (the scheduler then preempts by recomputing).
  virtual int32_t host_blocks() const { return 0; }
  bool can_swap() const { return host_blocks() > 0; }
  // Copies each move's device block into its host block (swap_out) or back (swap_in). Done
  // when the call returns: the source blocks may be reused at once. Throws model_error, before
  // anything is copied, for an id out of range or a destination named twice.
  virtual void swap_out(std::span<const block_move> moves) {
    if (!moves.empty()) throw model_error("swap_out: this runner has no host KV store");
  }
  virtual void swap_in(std::span<const block_move> moves) {
    if (!moves.empty()) throw model_error("swap_in: this runner has no host KV store");
  }

  // Legacy: copies positions [0, n_tokens) of slot `from` into slot `to`.
  void copy_slot(int32_t from, int32_t to, int32_t n_tokens) {
    if (from < 0 || from >= n_slots() || to < 0 || to >= n_slots() || n_tokens < 0 || n_tokens > max_ctx())
      throw model_error("copy_slot: slot or length out of range");
    if (from == to) return;
    const int32_t per = blocks_per_sequence(), bs = block_size();
    for (int32_t b = 0; b * bs < n_tokens; ++b)
      copy_block(from * per + b, to * per + b, n_tokens - b * bs < bs ? n_tokens - b * bs : bs);
  }

 protected:
  // Checks swap moves against both pools (ids in range, no destination twice); `to_host` says
  // which side is written. Errors are model_error messages starting with `who`.
  void check_moves(std::span<const block_move> moves, bool to_host, const std::string& who) const {
    std::set<int32_t> written;
    for (const auto& m : moves) {
      if (m.device < 0 || m.device >= n_blocks())
        throw model_error(who + ": device block " + std::to_string(m.device) + " out of range");
      if (m.host < 0 || m.host >= host_blocks())
        throw model_error(who + ": host block " + std::to_string(m.host) + " out of range");
      if (!written.insert(to_host ? m.host : m.device).second)
        throw model_error(who + ": a block is written twice");
    }
  }

  // Checks a batch against the contract above before anything is written, and returns each
  // item's block table cut to the blocks its positions reach. An item without `blocks` gets its
  // legacy slot's run, built in `legacy` (which must outlive the returned spans). Errors are
  // model_error messages starting with `who`.
  std::vector<std::span<const int32_t>> checked_tables(std::span<const forward_item> items,
                                                       std::vector<std::vector<int32_t>>& legacy,
                                                       const std::string& who) const {
    const int32_t bs = block_size(), per_seq = blocks_per_sequence();
    legacy.resize(items.size());
    std::vector<std::span<const int32_t>> tables;
    std::set<int32_t> written;
    for (size_t n = 0; n < items.size(); ++n) {
      const auto& it = items[n];
      if (it.tokens.empty()) throw model_error(who + ": an item has no tokens");
      if (it.start_pos < 0 ||
          static_cast<int64_t>(it.start_pos) + static_cast<int64_t>(it.tokens.size()) > max_ctx()) {
        throw model_error(who + ": positions " + std::to_string(it.start_pos) + ".." +
                          std::to_string(it.start_pos + it.tokens.size()) +
                          " exceed the context of " + std::to_string(max_ctx()));
      }
      std::span<const int32_t> table = it.blocks;
      if (table.empty()) {
        if (it.slot < 0 || it.slot >= n_slots()) {
          throw model_error(who + ": slot " + std::to_string(it.slot) +
                            " out of range (and no block table)");
        }
        auto& l = legacy[n];
        l.resize(static_cast<size_t>(per_seq));
        for (int32_t b = 0; b < per_seq; ++b) l[static_cast<size_t>(b)] = it.slot * per_seq + b;
        table = l;
      }
      const int32_t end = it.start_pos + static_cast<int32_t>(it.tokens.size());
      const size_t needed = static_cast<size_t>((end + bs - 1) / bs);
      if (table.size() < needed) {
        throw model_error(who + ": a block table of " + std::to_string(table.size()) +
                          " blocks cannot hold " + std::to_string(end) + " positions");
      }
      table = table.first(needed);
      for (int32_t b : table) {
        if (b < 0 || b >= n_blocks())
          throw model_error(who + ": block " + std::to_string(b) + " out of range");
      }
      for (size_t b = static_cast<size_t>(it.start_pos / bs); b < needed; ++b) {
        if (!written.insert(table[b]).second) {
          throw model_error(who + ": block " + std::to_string(table[b]) +
                            " is written by two items of one batch");
        }
      }
      for (int32_t t : it.tokens) {
        if (t < 0 || t >= config().vocab_size) {
          throw model_error(who + ": token id " + std::to_string(t) + " is outside the vocabulary");
        }
      }
      tables.push_back(table);
    }
    return tables;
  }
};

}  // namespace moat::engine

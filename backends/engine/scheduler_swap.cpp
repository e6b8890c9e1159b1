// Preemption by swapping (scheduler.h, step 3): a preempted sequence's computed KV blocks go to
// the runner's host store and come back into fresh device blocks, as vLLM's swap preemption.
// The sequence keeps its pos, phase and sampler state, so it continues as if never stopped.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>

#include "engine/scheduler.h"

namespace moat::engine {

// Moves the blocks holding positions [0, pos) of a running (prefill or decode) sequence to the
// host store and drops its device blocks. False, with nothing changed, when swapping is off or
// the store lacks room, when nothing is computed yet (recomputing costs nothing), or when the
// runner's copy fails; the caller then preempts by recomputing.
bool scheduler::swap_out(sequence& seq) {
  if (host_.total() == 0) return false;
  if (seq.phase != sequence_phase::prefill && seq.phase != sequence_phase::decode) return false;
  const int32_t n = (seq.pos + block_size_ - 1) / block_size_;
  if (n == 0 || static_cast<size_t>(n) > seq.blocks.size()) return false;
  auto host = host_.take(n);
  if (!host) return false;
  std::vector<block_move> moves;
  for (int32_t i = 0; i < n; ++i)
    moves.push_back({.device = seq.blocks[static_cast<size_t>(i)], .host = (*host)[i]});
  try {
    runner_.swap_out(moves);
  } catch (const std::exception& e) {
    spdlog::warn("engine: swapping KV blocks out failed ({}); recomputing instead", e.what());
    host_.give_back(*host);
    return false;
  }
  // The device blocks go back to the pool; published ones stay cached (their content is still
  // there until the pool reuses them). n_published and chain_hash are kept: the blocks that come
  // back hold the same positions, and later ones are hashed on from the same chain.
  for (int32_t b : seq.blocks) pool_.unref(b);
  seq.blocks.clear();
  seq.host_blocks = std::move(*host);
  seq.resumes = seq.phase;
  seq.phase = sequence_phase::swapped;
  seq.leader = nullptr;
  ++swap_outs_;
  blocks_out_ += static_cast<uint64_t>(n);
  ++swapped_;
  publish_stats();
  return true;
}

// Brings a swapped sequence back: fresh device blocks for everything it needs next (the whole
// context while it prefills, the position it decodes next otherwise), its host blocks copied
// into the first of them. False, with nothing changed, while the batch or the pool lacks room.
// A failed copy loses the host copy: the sequence then recomputes (try_admit).
bool scheduler::swap_in(sequence& seq) {
  if (running_.size() >= running_cap_) return false;
  const int32_t bs = block_size_;
  const auto kept = static_cast<int32_t>(seq.host_blocks.size());
  const int32_t target = seq.resumes == sequence_phase::decode
                             ? seq.pos + 1
                             : static_cast<int32_t>(seq.context().size());
  const int32_t needed = std::max(kept, (target + bs - 1) / bs);
  if (pool_.available() < needed) return false;
  std::vector<int32_t> blocks;
  for (int32_t i = 0; i < needed; ++i) blocks.push_back(pool_.allocate());
  std::vector<block_move> moves;
  for (int32_t i = 0; i < kept; ++i)
    moves.push_back({.device = blocks[static_cast<size_t>(i)],
                     .host = seq.host_blocks[static_cast<size_t>(i)]});
  try {
    runner_.swap_in(moves);
  } catch (const std::exception& e) {
    spdlog::warn("engine: swapping KV blocks in failed ({}); recomputing request {} choice {}",
                 e.what(), seq.owner.request.id, seq.index);
    for (int32_t b : blocks) pool_.unref(b);
    free_host_blocks(seq);
    if (seq.resumes == sequence_phase::decode) seq.prepare_recompute();
    seq.pos = 0;
    seq.n_published = 0;
    seq.phase = sequence_phase::waiting;
    ++recomputes_;
    publish_stats();
    return try_admit(seq.owner, seq, false);
  }
  free_host_blocks(seq);
  seq.blocks = std::move(blocks);
  seq.phase = seq.resumes;
  ++swap_ins_;
  blocks_in_ += static_cast<uint64_t>(kept);
  start_running(seq);
  return true;
}

// Returns a swapped sequence's host blocks (swapped back in, finished or cancelled).
void scheduler::free_host_blocks(sequence& seq) {
  if (seq.host_blocks.empty()) return;
  host_.give_back(seq.host_blocks);
  seq.host_blocks.clear();
  --swapped_;
}

}  // namespace moat::engine

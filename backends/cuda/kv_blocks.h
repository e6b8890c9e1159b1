// kv_block_manager: host bookkeeping of a paged KV cache whose blocks live on the device and,
// when the device pool runs out, in pinned host memory (options.host_kv_mb). It decides which
// block holds what and lists the copies to make; the runner performs them. No CUDA here, so it
// is unit-tested on every machine.
//
//   kv_block_manager m(/*device_blocks=*/1024, /*host_blocks=*/4096, /*block_size=*/16);
//   if (!m.reserve(seq, n_positions)) {           // the device pool is full: preempt someone
//     auto victim = m.pick_victim(seq);
//     auto copies = m.swap_out(*victim);          // device -> host block pairs to copy
//   }
//   const std::vector<int32_t>& table = m.table(seq);   // block table for paged attention
//   ... later: auto back = m.swap_in(*victim);   // host -> device pairs; new device blocks
//
// Sequences are admitted in order; pick_victim takes the most recently admitted resident one
// (vLLM's policy: the newest loses least work and the oldest keeps its latency).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "engine/model_runner.h"

namespace moat::cuda {

struct block_copy {
  int32_t from = 0, to = 0;  // swap_out: device block -> host block; swap_in: host -> device
};

// A run of consecutive blocks on both sides: [from, from + count) -> [to, to + count).
struct copy_run {
  int32_t from = 0, to = 0, count = 0;
  bool operator==(const copy_run&) const = default;
};

// The copies sorted by source block with consecutive pairs joined, so a swap costs one
// cudaMemcpyAsync per run and layer (kv_swap.h) rather than one per block.
std::vector<copy_run> coalesce_copies(std::vector<block_copy> copies);

// The runs of one engine swap (engine/model_runner.h): device -> host blocks when `to_host`,
// host -> device otherwise. The runner copies each run once per layer, K and V.
std::vector<copy_run> swap_runs(std::span<const engine::block_move> moves, bool to_host);

// Host blocks that options.host_kv_mb MiB hold for `n_layers` layers (a K and a V block each).
int32_t host_kv_blocks_for(int64_t mb, int32_t n_layers, size_t block_bytes);

class kv_block_manager {
 public:
  kv_block_manager(int32_t device_blocks, int32_t host_blocks, int32_t block_size);

  // Makes `seq` hold at least n_positions positions on the device (admitting it if new).
  // All or nothing: false, with nothing changed, when the device pool lacks blocks or the
  // sequence is swapped out.
  bool reserve(uint64_t seq, int32_t n_positions);
  // Frees every block of `seq`, wherever it is. Unknown ids are ignored.
  void release(uint64_t seq);

  // Moves a resident sequence's blocks to the host pool; nullopt (nothing changed) when it is
  // not resident or the host pool lacks blocks.
  std::optional<std::vector<block_copy>> swap_out(uint64_t seq);
  // Brings a swapped-out sequence back into (new) device blocks; nullopt when it is not swapped
  // out or the device pool lacks blocks.
  std::optional<std::vector<block_copy>> swap_in(uint64_t seq);

  // The most recently admitted resident sequence other than `except`.
  std::optional<uint64_t> pick_victim(uint64_t except) const;

  bool resident(uint64_t seq) const;
  bool swapped(uint64_t seq) const;
  // Device block table of a resident sequence (empty otherwise).
  const std::vector<int32_t>& table(uint64_t seq) const;
  int32_t free_device_blocks() const { return static_cast<int32_t>(free_device_.size()); }
  int32_t free_host_blocks() const { return static_cast<int32_t>(free_host_.size()); }
  int32_t block_size() const { return block_size_; }

 private:
  struct entry {
    uint64_t order = 0;           // admission order
    bool on_host = false;
    std::vector<int32_t> blocks;  // device blocks, or host blocks while swapped out
  };
  static std::optional<std::vector<int32_t>> take(std::vector<int32_t>& pool, size_t n);

  int32_t block_size_;
  uint64_t next_order_ = 0;
  std::vector<int32_t> free_device_, free_host_;  // stacks of free block ids
  std::map<uint64_t, entry> seqs_;
};

}  // namespace moat::cuda

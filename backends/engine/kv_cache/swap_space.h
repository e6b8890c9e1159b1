// swap_space: which blocks of a runner's host KV store (model_runner::host_blocks(), sized by
// options.host_kv_mb) hold a swapped-out sequence. The runner owns the memory; this only hands
// out ids. Blocks are never shared: a sequence swapped out gets its own copy of every block.
//
//   swap_space host(runner.host_blocks());
//   if (auto ids = host.take(3)) runner.swap_out(moves from the sequence's blocks to *ids);
//   else ...                                   // no room: preempt by recomputing instead
//   host.give_back(*ids);                      // swapped back in, finished or cancelled
//
// Not thread-safe: the scheduler's engine thread owns it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace moat::engine::kv_cache {

class swap_space {
 public:
  explicit swap_space(int32_t n_blocks);

  // n free blocks, lowest ids first (so a sequence's blocks tend to be one run); nullopt, with
  // nothing taken, when fewer than n are free.
  std::optional<std::vector<int32_t>> take(int32_t n);
  // Returns blocks from take(). Throws std::logic_error for an id not taken (a double free).
  void give_back(std::span<const int32_t> blocks);

  int32_t total() const { return static_cast<int32_t>(taken_.size()); }
  int32_t available() const { return static_cast<int32_t>(free_.size()); }
  int32_t used() const { return total() - available(); }

 private:
  std::vector<int32_t> free_;  // a stack, lowest id on top
  std::vector<bool> taken_;
};

}  // namespace moat::engine::kv_cache

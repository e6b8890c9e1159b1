// CUDA-graph capture keys for decode steps: a decode step is captured once per batch bucket and
// replayed for any batch that fits, padded with empty rows (sequence length 0: the attention
// kernel writes zeros, the sampler's row is ignored). Host logic only; the capture itself is
// not written yet (docs/cuda.md).
//
//   graph_buckets b = graph_buckets::defaults(max_batch);   // 1 2 4 8 16 24 32 48 64 ... max_batch
//   int32_t padded = b.bucket_for(n_running);                // -1: run eagerly (too large)
#pragma once

#include <cstdint>
#include <vector>

namespace moat::cuda {

struct graph_buckets {
  std::vector<int32_t> sizes;  // ascending, distinct, positive

  // 1, 2, 4, 8, then steps of 8 to 32, of 16 to 64, of 32 to 256, of 64 beyond, capped at
  // max_batch, which is always the last bucket (vLLM's capture list has the same shape).
  static graph_buckets defaults(int32_t max_batch);

  // The smallest bucket holding n sequences, or -1 when n <= 0 or n exceeds every bucket.
  int32_t bucket_for(int32_t n) const;
};

}  // namespace moat::cuda

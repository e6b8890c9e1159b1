// Moving KV blocks between the device pools and pinned host memory (options.host_kv_mb), for
// the block copies kv_block_manager (kv_blocks.h) lists on swap_out / swap_in. Copies are
// coalesced into runs of consecutive blocks on both sides, so a sequence whose blocks are
// mostly contiguous costs a few large cudaMemcpyAsync calls per layer rather than one per block.
// coalesce_copies and host_kv_blocks_for (kv_blocks.h) are host logic, tested on the CPU;
// host_kv_pool owns the pinned memory.
//
//   host_kv_pool host(n_layers, host_blocks, block_bytes);        // cudaHostAlloc, throws
//   auto runs = coalesce_copies(*manager.swap_out(seq));
//   for each layer l: copy_runs(runs, dev_k[l], host.k(l), block_bytes, cudaMemcpyDeviceToHost, stream);
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kv_blocks.h"

namespace moat::cuda {

// One cudaMemcpyAsync per run: `block_bytes` bytes per block, pools indexed by block id.
// Throws model_error on a CUDA error.
void copy_runs(const std::vector<copy_run>& runs, const void* src_pool, void* dst_pool, size_t block_bytes,
               cudaMemcpyKind kind, cudaStream_t stream);

// The host side of the KV cache: per layer, a K and a V pool of `blocks` blocks in pinned
// memory (so the copies are asynchronous DMA). Owns the memory; freed by the destructor.
class host_kv_pool {
 public:
  host_kv_pool(int32_t n_layers, int32_t blocks, size_t block_bytes);  // throws model_error
  ~host_kv_pool();
  host_kv_pool(const host_kv_pool&) = delete;
  host_kv_pool& operator=(const host_kv_pool&) = delete;

  void* k(int32_t layer) const { return ptr(layer, 0); }
  void* v(int32_t layer) const { return ptr(layer, 1); }
  int32_t blocks() const { return blocks_; }

 private:
  void* ptr(int32_t layer, int32_t which) const;
  int32_t n_layers_, blocks_;
  size_t block_bytes_;
  void* base_ = nullptr;  // [n_layers][2][blocks][block_bytes]
};

}  // namespace moat::cuda

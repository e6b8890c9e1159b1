#include "kv_swap.h"

#include <fmt/format.h>

#include "cuda_memory.h"
#include "engine/model_error.h"

namespace moat::cuda {

void copy_runs(const std::vector<copy_run>& runs, const void* src_pool, void* dst_pool, size_t block_bytes,
               cudaMemcpyKind kind, cudaStream_t stream) {
  const auto* src = static_cast<const uint8_t*>(src_pool);
  auto* dst = static_cast<uint8_t*>(dst_pool);
  for (const auto& r : runs) {
    check(cudaMemcpyAsync(dst + static_cast<size_t>(r.to) * block_bytes, src + static_cast<size_t>(r.from) * block_bytes,
                          static_cast<size_t>(r.count) * block_bytes, kind, stream),
          "KV block copy");
  }
}

host_kv_pool::host_kv_pool(int32_t n_layers, int32_t blocks, size_t block_bytes)
    : n_layers_(n_layers), blocks_(blocks), block_bytes_(block_bytes) {
  if (n_layers <= 0 || blocks <= 0 || block_bytes == 0) return;
  const size_t bytes = static_cast<size_t>(n_layers) * 2 * static_cast<size_t>(blocks) * block_bytes;
  if (cudaHostAlloc(&base_, bytes, cudaHostAllocDefault) != cudaSuccess) {
    cudaGetLastError();
    base_ = nullptr;
    throw engine::model_error(
        fmt::format("cuda: cannot pin {:.1f} MiB of host memory for swapped KV blocks (options.host_kv_mb); lower it "
                    "or raise the locked-memory limit",
                    bytes / 1048576.0));
  }
}

host_kv_pool::~host_kv_pool() {
  if (base_ != nullptr) cudaFreeHost(base_);
}

void* host_kv_pool::ptr(int32_t layer, int32_t which) const {
  if (base_ == nullptr) return nullptr;
  return static_cast<uint8_t*>(base_) + (static_cast<size_t>(layer) * 2 + static_cast<size_t>(which)) *
                                            static_cast<size_t>(blocks_) * block_bytes_;
}

}  // namespace moat::cuda

// make_cuda_runner: engine::model_runner on one NVIDIA GPU, built from the kernels in kernels/.
//
//   auto model = std::make_shared<const moat::engine::loaded_model>(moat::engine::load_model(path));
//   auto runner = moat::cuda::make_cuda_runner(model, {.device = 0, .kv_cache_mb = 2048, .weights = "int4"});
//   runner->forward(items, logits);   // same contract as the CPU runner (engine/model_runner.h)
//
// Weights are uploaded once: f32/f16/bf16 as stored, GGUF Q8_0 as f32, pre-quantized int8/int4/
// nf4 and GGUF Q4_0 as stored (cuda_weights.h), or quantized on the way up when `weights` names a
// format (int8, int4, nf4 double-quantized, bf16, f16). The KV
// cache is a paged pool per layer, [n_blocks][16][n_kv_heads][head_dim] f32 (block_size() is
// 16); forward items bring their block tables (engine/model_runner.h), and legacy slot s is the
// fixed run of blocks [s * B, (s + 1) * B), B = ceil(max_ctx / 16).
// With host_kv_mb, a pinned host pool (kv_swap.h) of the same per-layer layout holds the blocks
// of sequences the scheduler swaps out (model_runner::swap_out / swap_in): one cudaMemcpyAsync
// per run of consecutive blocks, layer and K/V, synchronized before the call returns.
// Every CUDA error becomes engine::model_error ("cuda: <what>: <cudaGetErrorString>"); no device
// means model_error from make_cuda_runner, never an abort.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/loader.h"
#include "engine/model_runner.h"

namespace moat::cuda {

struct cuda_options {
  int32_t device = 0;
  size_t kv_cache_mb = 1024;  // KV pool, in whole max_ctx sequences: pool / (kv_bytes_per_token * max_ctx)
  int32_t max_ctx = 0;        // positions per slot; 0 = config.max_position_embeddings
  int32_t max_slots = 0;      // 0 = as many as fit, at most 256
  std::string weights;        // "" (as stored), "f16", "bf16", "int8", "int4", "nf4"
  int32_t int4_group = 64;    // 32, 64 or 128
  int64_t host_kv_mb = 0;     // pinned host memory for swapped-out KV blocks (model_runner::swap_out); 0 = none
};

// Throws engine::model_error: no device, an unknown weights format, a pool too small for one
// slot, out of device memory.
std::unique_ptr<engine::model_runner> make_cuda_runner(std::shared_ptr<const engine::loaded_model> model,
                                                       const cuda_options& opts);

// The number of CUDA devices, or a message saying why there are none (for create()).
int32_t cuda_device_count(std::string* why);

}  // namespace moat::cuda

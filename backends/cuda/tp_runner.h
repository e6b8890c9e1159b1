// make_tp_runner: engine::model_runner over N GPUs with Megatron-style tensor parallelism.
// Each rank (one thread, one device: tp_workers.h) holds its shard (tp_upload.h: its query and
// kv heads, its ffn rows, its vocabulary rows) and a KV pool for its own kv heads; a step runs
// the layers on every rank at once with an NCCL sum all-reduce (nccl_comm.h) after wo and after
// w_down, and each rank writes its vocabulary columns of the logits straight into the caller's
// buffer (a strided device-to-host copy, so no gather). Same contract as the single-GPU runner
// (cuda_runner.h); the block ids are the same on every rank.
//
//   auto r = moat::cuda::make_tp_runner(model, {.devices = {0, 1}, .kv_cache_mb = 4096});
//   r->forward(items, logits);   // throws engine::model_error ("tensor parallel rank R: ...")
//
// Compiled everywhere nvcc is; not yet run on a GPU (docs/cuda.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/loader.h"
#include "engine/model_runner.h"

namespace moat::cuda {

struct tp_runner_options {
  std::vector<int32_t> devices{0};  // one per rank; the world size is devices.size()
  size_t kv_cache_mb = 1024;        // per GPU, for that rank's share of the KV cache
  int32_t max_ctx = 0;              // 0 = config.max_position_embeddings
  int32_t max_slots = 0;            // 0 = as many as fit, at most 256
  std::string weights;              // as cuda_options::weights
  int32_t int4_group = 64;
  // Decode steps (one token per item, at most graph_max_batch items) as CUDA graphs captured
  // per batch bucket (graph_cache.h). Off by default until it has run on a GPU.
  bool cuda_graphs = false;
  int32_t graph_max_batch = 64;
};

// Throws engine::model_error: no NCCL in this build, a device missing, a world size that does
// not divide the heads or the ffn, out of memory on a rank (naming it).
std::unique_ptr<engine::model_runner> make_tp_runner(std::shared_ptr<const engine::loaded_model> model,
                                                     const tp_runner_options& opts);

}  // namespace moat::cuda

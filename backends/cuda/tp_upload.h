// One tensor-parallel rank's weights on its GPU: the engine's host-side sharding
// (engine::make_tp_shard: column-parallel wq/wk/wv/w_gate/w_up rows, row-parallel wo/w_down
// columns, lm_head vocabulary rows, norms replicated) uploaded in a kernel weight format.
// Runs on the rank's own thread with its device current (tp_workers.h init).
//
//   auto plan = engine::tp_plan::make(model->config, world);
//   device_shard s = upload_tp_shard(*model, plan, rank, "int4", 64, stream);
//   s.config.n_heads;    // this rank's query heads
//   s.vocab;             // the logits rows its lm_head produces (all-gathered after)
#pragma once

#include <cuda_runtime_api.h>

#include <string>
#include <vector>

#include "cuda_weights.h"
#include "engine/tensor_parallel.h"

namespace moat::cuda {

struct device_layer {
  device_buffer<float> attn_norm, ffn_norm;  // [hidden], replicated
  device_weight wq, wk, wv;                  // column-parallel: this rank's heads' rows
  device_weight wo;                          // row-parallel: this rank's q columns -> all-reduce
  device_weight w_gate, w_up;                // column-parallel: this rank's ffn rows
  device_weight w_down;                      // row-parallel: this rank's ffn columns -> all-reduce
};

struct device_shard {
  int32_t rank = 0;
  engine::model_config config;  // rank-local shape (tp_shard.config)
  engine::tp_range vocab;       // global logits rows of this rank's lm_head
  device_buffer<float> final_norm;
  device_weight lm_head;        // [vocab.size()][hidden]
  std::vector<device_layer> layers;
};

// Shards on the host, uploads, and frees the host copies of the row-parallel slices before
// returning (the device holds everything the forward needs; embeddings stay in the host model,
// looked up per token as the single-GPU runner does). Throws model_error (sharding or CUDA).
device_shard upload_tp_shard(const engine::loaded_model& model, const engine::tp_plan& plan, int32_t rank,
                             const std::string& format, int32_t int4_group, cudaStream_t stream);

}  // namespace moat::cuda

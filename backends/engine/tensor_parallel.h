// Megatron-style tensor parallelism, host side: which rows and columns of each weight a rank
// owns, rank-local weight views, and an all-reduce over threads for the CPU. The CUDA backend
// uses the same plan with NCCL in place of thread_all_reduce.
//
//   auto plan = moat::engine::tp_plan::make(model.config, 2);       // throws model_error
//   moat::engine::tp_shard s0 = moat::engine::make_tp_shard(model, plan, 0);
//   s0.config.n_heads;            // 4 of 8: rank 0 owns query heads 0..3, kv heads 0..1
//   moat::engine::thread_all_reduce ar(2);
//   ar.sum(rank, partial, n);     // called by every rank's thread; partial becomes the total
//
// Layout per layer (W is {out, in}, row-major):
//   column-parallel (split out rows, a contiguous view, no copy): wq, wk, wv, w_gate, w_up;
//   row-parallel (split in columns, copied per rank):              wo, w_down -> all-reduce;
//   lm_head: split by vocabulary rows; each rank writes its logits range (a gather, no sum);
//   embed and norms: replicated.
// A rank's heads are contiguous, so with GQA its query heads use exactly its own kv heads.
#pragma once

#include <barrier>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/loader.h"

namespace moat::engine {

struct tp_range {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

struct tp_plan {
  int32_t world = 1;
  int32_t heads_per_rank = 0;     // query heads
  int32_t kv_heads_per_rank = 0;
  int32_t ffn_per_rank = 0;       // intermediate rows
  int32_t head_dim = 0;
  int32_t vocab = 0;

  // Throws model_error unless world >= 1 divides n_heads, n_kv_heads and intermediate_size.
  static tp_plan make(const model_config& cfg, int32_t world);

  tp_range q_rows(int32_t rank) const;    // rows of wq, columns of wo
  tp_range kv_rows(int32_t rank) const;   // rows of wk and wv
  tp_range ffn_rows(int32_t rank) const;  // rows of w_gate/w_up, columns of w_down
  // Vocabulary rows of lm_head: ceil(vocab / world) per rank, the last one shorter (the
  // vocabulary need not divide).
  tp_range vocab_rows(int32_t rank) const;
};

// One rank's weights. config is the rank-local shape (n_heads, n_kv_heads, intermediate_size
// and vocab_size are this rank's counts; hidden_size and head_dim are unchanged), so q_dim()
// and kv_dim() give local sizes. Column-parallel tensors point into the model's storage; the
// row-parallel ones point into `owned`. Keep the loaded_model alive as long as the shard.
struct tp_shard {
  int32_t rank = 0;
  model_config config;
  model_weights weights;
  tp_range vocab;  // global logits range this rank's lm_head produces
  std::vector<std::unique_ptr<uint8_t[]>> owned;
};

tp_shard make_tp_shard(const loaded_model& model, const tp_plan& plan, int32_t rank);

// Rows [r.begin, r.end) of a 2-D tensor as a view (no copy).
tensor tp_slice_rows(const tensor& t, tp_range r);
// Columns [r.begin, r.end) of a 2-D tensor, copied into a new buffer appended to `owned`.
// Block formats (q8_0, q4_0) need the range on 32-element block boundaries; throws
// model_error otherwise.
tensor tp_slice_cols(const tensor& t, tp_range r, std::vector<std::unique_ptr<uint8_t[]>>& owned);

// Sum-all-reduce between `world` threads, one per rank. Every rank calls sum() with the same
// n in the same order; each returns once `data` holds the element-wise sum over ranks, added
// in rank order 0..world-1 so every rank gets the same bits and a run is reproducible.
class thread_all_reduce {
 public:
  explicit thread_all_reduce(int32_t world);
  void sum(int32_t rank, float* data, int64_t n);
  int32_t world() const { return world_; }

 private:
  int32_t world_;
  std::barrier<> barrier_;
  std::vector<float*> inputs_;
  std::vector<float> result_;
};

}  // namespace moat::engine

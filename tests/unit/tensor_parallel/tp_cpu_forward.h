// A tensor-parallel CPU forward pass for the tests: one tp_shard per rank, one thread per rank,
// the same math as cpu::reference_forward on the rank's heads and intermediate rows, with a
// thread_all_reduce after the attention output and the down projection, and the vocabulary
// split for the logits.
//
//   tp_cpu_model m(model, 4, max_ctx);
//   std::vector<float> logits = m.step(token, pos);   // [vocab], gathered from every rank
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "cpu/model_view.h"
#include "engine/tensor_parallel.h"

namespace moat::test {

class tp_cpu_model {
 public:
  tp_cpu_model(const engine::loaded_model& model, int32_t world, int32_t max_ctx);
  // Runs `token` at `pos` on every rank (one thread each); returns the full [vocab] logits.
  std::vector<float> step(int32_t token, int32_t pos);

 private:
  struct rank_state {
    engine::tp_shard shard;
    std::unique_ptr<cpu::kv_pool> kv;  // local kv heads only
  };
  void rank_forward(rank_state& r, int32_t token, int32_t pos, float* logits);

  const engine::loaded_model& model_;
  engine::tp_plan plan_;
  std::vector<float> inv_freq_, final_norm_;
  std::vector<std::vector<float>> attn_norm_, ffn_norm_;
  std::vector<rank_state> ranks_;
  engine::thread_all_reduce all_reduce_;
};

}  // namespace moat::test

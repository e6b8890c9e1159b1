// model_view and kv_pool: what both CPU forward passes read (weights, f32 norms, RoPE
// frequencies) and write (the KV cache). Internal to backends/cpu.
//
//   model_view mv(model);                       // borrows model's tensors; keep model alive
//   kv_pool kv(cfg.n_layers, max_ctx, cfg.kv_dim(), n_slots);
//   float* k = kv.k(slot, layer, pos);          // kv_dim floats
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/loader.h"

namespace moat::cpu {

struct model_view {
  explicit model_view(const engine::loaded_model& m);

  const engine::model_config& cfg;
  const engine::model_weights& w;
  std::vector<float> inv_freq;                 // [head_dim/2]
  std::vector<std::vector<float>> attn_norm;   // [n_layers][hidden]
  std::vector<std::vector<float>> ffn_norm;    // [n_layers][hidden]
  std::vector<float> final_norm;               // [hidden]
};

// The KV cache: per slot, K then V, each [n_layers][max_ctx][kv_dim] floats. The memory is
// allocated uninitialized (pages are touched only as positions are written).
class kv_pool {
 public:
  kv_pool(int32_t n_layers, int32_t max_ctx, int32_t kv_dim, int32_t n_slots);

  float* k(int32_t slot, int32_t layer, int32_t pos) { return base(slot, 0, layer, pos); }
  float* v(int32_t slot, int32_t layer, int32_t pos) { return base(slot, 1, layer, pos); }
  int32_t n_slots() const { return n_slots_; }
  int32_t max_ctx() const { return max_ctx_; }
  int32_t kv_dim() const { return kv_dim_; }
  int32_t n_layers() const { return n_layers_; }

 private:
  float* base(int32_t slot, int which, int32_t layer, int32_t pos) {
    const size_t per_layer = static_cast<size_t>(max_ctx_) * kv_dim_;
    const size_t per_half = per_layer * n_layers_;
    return data_.get() + (static_cast<size_t>(slot) * 2 + which) * per_half + layer * per_layer +
           static_cast<size_t>(pos) * kv_dim_;
  }
  int32_t n_layers_, max_ctx_, kv_dim_, n_slots_;
  std::unique_ptr<float[]> data_;
};

}  // namespace moat::cpu

// model_view and kv_pool: what both CPU forward passes read (weights, f32 norms, RoPE
// frequencies) and write (the KV cache). Internal to backends/cpu.
//
//   model_view mv(model);                       // borrows model's tensors; keep model alive
//   model_view mq(model, engine::dtype::int8);  // linear weights quantized on load (owned here)
//   kv_pool kv(cfg.n_layers, max_ctx, cfg.kv_dim(), n_slots);
//   float* k = kv.k(slot, layer, pos);          // kv_dim floats
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "cpu/huge_pages.h"
#include "cpu/quant/matmul.h"
#include "engine/loader.h"

namespace moat::cpu {

// quant: dtype::f32 (weights as stored), or int8 / int4 / nf4: the 2-D linear weights (q, k, v,
// o, gate, up, down, and lm_head unless tied to the embedding) are quantized from their stored
// values into buffers owned here (those already in that format are kept); embeddings and norms
// stay as stored. Weights stored quantized (GGUF Q8_0 / Q4_0, bitsandbytes NF4 / int8) reach
// the kernels as views over the mapped file (quantized_view); the token lookup dequantizes one
// embedding row per token. The weights a step reads whole go onto 2 MiB pages where the kernel
// allows it (huge_pages.h): same bytes, fewer TLB misses; those in a file mapping (GGUF, or
// safetensors served as stored) are copied into memory owned here to get there.
struct model_view {
  explicit model_view(const engine::loaded_model& m, engine::dtype quant = engine::dtype::f32);

  const engine::model_config& cfg;
  engine::model_weights w;  // the model's tensors; quantized ones point into quantized_
  std::vector<float> inv_freq;                 // [head_dim/2]
  std::vector<std::vector<float>> attn_norm;   // [n_layers][hidden]
  std::vector<std::vector<float>> ffn_norm;    // [n_layers][hidden]
  std::vector<float> final_norm;               // [hidden]

 private:
  // The weights a step reads whole onto 2 MiB pages (huge_pages.h): those in a file mapping
  // copied into file_copy_ (their file pages dropped), the rest collapsed in place.
  void place_weights();

  std::vector<quant::quantized_matrix> quantized_;  // storage of the quantized tensors in w
  huge_buffer file_copy_;                           // weights copied out of a file mapping
};

// The moat_cpu_quant view of a tensor in a format its kernels read (int8, int4, nf4, q8_0,
// q4_0), or nullopt for f32/f16/bf16.
std::optional<quant::qmatrix_view> quantized_view(const engine::tensor& t);
// "int8" / "int4" / "nf4" -> the dtype; nullopt otherwise.
std::optional<engine::dtype> parse_quant(std::string_view name);

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

#include "cpu/model_view.h"

namespace moat::cpu {

namespace {
std::vector<float> to_f32(const engine::tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.cols()));
  t.row_to_f32(0, out.data());
  return out;
}
}  // namespace

model_view::model_view(const engine::loaded_model& m)
    : cfg(m.config), w(m.weights), inv_freq(engine::rope_inv_freq(m.config)), final_norm(to_f32(m.weights.final_norm)) {
  for (const auto& l : w.layers) {
    attn_norm.push_back(to_f32(l.attn_norm));
    ffn_norm.push_back(to_f32(l.ffn_norm));
  }
}

kv_pool::kv_pool(int32_t n_layers, int32_t max_ctx, int32_t kv_dim, int32_t n_slots)
    : n_layers_(n_layers), max_ctx_(max_ctx), kv_dim_(kv_dim), n_slots_(n_slots),
      data_(new float[static_cast<size_t>(n_slots) * 2 * n_layers * max_ctx * kv_dim]) {}

}  // namespace moat::cpu

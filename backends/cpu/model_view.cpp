#include "cpu/model_view.h"

#include <spdlog/spdlog.h>

#include <cstring>

#include "cpu/huge_pages.h"
#include "engine/model_error.h"

namespace moat::cpu {

namespace {
std::vector<float> to_f32(const engine::tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.cols()));
  t.row_to_f32(0, out.data());
  return out;
}

// Bytes of t's f32 scales (int8 / int4 / nf4), 0 for formats without a separate scale array.
size_t scale_bytes(const engine::tensor& t) {
  if (t.type != engine::dtype::int8 && t.type != engine::dtype::int4 &&
      t.type != engine::dtype::nf4)
    return 0;
  return engine::quant::quantized_scales(engine::row_format_of(t.type),
                                         static_cast<size_t>(t.rows()),
                                         static_cast<size_t>(t.cols())) *
         sizeof(float);
}

quant::weight_format format_of(engine::dtype t) {
  switch (t) {
    case engine::dtype::int8: return quant::weight_format::int8;
    case engine::dtype::int4: return quant::weight_format::int4_g64;
    case engine::dtype::nf4: return quant::weight_format::nf4;
    default: throw engine::model_error("quant: unsupported target format");
  }
}
}  // namespace

std::optional<engine::dtype> parse_quant(std::string_view name) {
  if (name == "int8") return engine::dtype::int8;
  if (name == "int4") return engine::dtype::int4;
  if (name == "nf4") return engine::dtype::nf4;
  return std::nullopt;
}

std::optional<quant::qmatrix_view> quantized_view(const engine::tensor& t) {
  quant::weight_format f;
  switch (t.type) {
    case engine::dtype::q8_0: f = quant::weight_format::q8_0; break;
    case engine::dtype::q4_0: f = quant::weight_format::q4_0; break;
    case engine::dtype::int8: f = quant::weight_format::int8; break;
    case engine::dtype::int4: f = quant::weight_format::int4_g64; break;
    case engine::dtype::nf4: f = quant::weight_format::nf4; break;
    default: return std::nullopt;
  }
  return quant::qmatrix_view{f, static_cast<size_t>(t.rows()), static_cast<size_t>(t.cols()), t.data, t.scales};
}

model_view::model_view(const engine::loaded_model& m, engine::dtype quant)
    : cfg(m.config), w(m.weights), inv_freq(engine::rope_inv_freq(m.config)), final_norm(to_f32(m.weights.final_norm)) {
  for (const auto& l : w.layers) {
    attn_norm.push_back(to_f32(l.attn_norm));
    ffn_norm.push_back(to_f32(l.ffn_norm));
  }
  if (quant == engine::dtype::f32) {
    place_weights();
    return;
  }
  const quant::weight_format f = format_of(quant);
  std::vector<engine::tensor*> linear;
  for (auto& l : w.layers) {
    for (engine::tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) linear.push_back(t);
  }
  // A tied lm_head is the embedding: kept as stored (the embedding lookup reads it too).
  if (w.lm_head.data != w.embed.data) linear.push_back(&w.lm_head);
  quantized_.reserve(linear.size());
  std::vector<float> full;
  for (engine::tensor* t : linear) {
    // Already in the target format (a bitsandbytes NF4 or int8 checkpoint): used as stored,
    // not re-quantized from its own dequantized values.
    if (t->type == quant) continue;
    const int64_t rows = t->rows(), cols = t->cols();
    if (quant == engine::dtype::nf4 && cols % 2 != 0) throw engine::model_error(t->name + ": nf4 needs an even row length");
    full.resize(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) t->row_to_f32(r, full.data() + r * cols);
    quantized_.push_back(quant::quantize_matrix(f, full.data(), static_cast<size_t>(rows), static_cast<size_t>(cols)));
    t->type = quant;
    t->data = quantized_.back().data.data();
    t->scales = quantized_.back().scales.data();
  }
  place_weights();
}

void model_view::place_weights() {
  std::vector<engine::tensor*> ts;
  for (auto& l : w.layers) {
    for (engine::tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      ts.push_back(t);
  }
  ts.push_back(&w.lm_head);
  size_t streamed = 0;
  for (const engine::tensor* t : ts) streamed += t->empty() ? 0 : t->bytes() + scale_bytes(*t);
  if (!huge_pages_enabled() || streamed < huge_pages_min_bytes()) return;
  const bool tied = w.lm_head.data == w.embed.data;
  // In a file mapping: copied into one huge_buffer, each source's pages dropped right after
  // its copy (the peak stays one tensor above the resident weights).
  // One read of /proc/self/maps for every tensor's question (and the release's check).
  const memory_map mappings;
  std::vector<engine::tensor*> copied;
  size_t copy_bytes = 0;
  for (engine::tensor* t : ts) {
    if (t->empty() || !mappings.in_file_mapping(t->data, t->bytes())) continue;
    copied.push_back(t);
    copy_bytes += (t->bytes() + 63) & ~size_t{63};
  }
  if (!copied.empty()) {
    huge_buffer b(copy_bytes);
    if (b.data() != nullptr) {
      uint8_t* at = b.data();
      for (engine::tensor* t : copied) {
        std::memcpy(at, t->data, t->bytes());
        release_file_pages(t->data, t->bytes(), mappings);
        t->data = at;
        at += (t->bytes() + 63) & ~size_t{63};
      }
      if (tied) w.embed.data = w.lm_head.data;  // the token lookup reads the copy too
      file_copy_ = std::move(b);
    }
  }
  size_t got = 0;
  for (const engine::tensor* t : ts) {
    if (t->empty()) continue;
    got += collapse_to_huge_pages(t->data, t->bytes());
    if (t->scales != nullptr) got += collapse_to_huge_pages(t->scales, scale_bytes(*t));
  }
  // got counts a page shared by two tensors twice: an indication, not an exact figure.
  spdlog::debug(
      "cpu: {} MiB of weights ({} MiB copied out of a file mapping), {} MiB of 2 MiB pages "
      "collapsed",
      streamed >> 20, file_copy_.size() >> 20, got >> 20);
}

kv_pool::kv_pool(int32_t n_layers, int32_t max_ctx, int32_t kv_dim, int32_t n_slots)
    : n_layers_(n_layers), max_ctx_(max_ctx), kv_dim_(kv_dim), n_slots_(n_slots),
      data_(new float[static_cast<size_t>(n_slots) * 2 * n_layers * max_ctx * kv_dim]) {}

}  // namespace moat::cpu

#include "cpu/cpu_runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "cpu/batched_forward.h"
#include "cpu/model_view.h"
#include "cpu/reference_forward.h"
#include "cpu/thread_pool.h"
#include "engine/model_error.h"

namespace moat::cpu {

namespace {

constexpr int32_t default_max_slots = 256;

engine::dtype quant_dtype(const std::string& name) {
  if (name.empty()) return engine::dtype::f32;
  if (auto d = parse_quant(name)) return *d;
  throw engine::model_error("quant: '" + name + "' is not one of int8, int4, nf4");
}

class cpu_runner final : public engine::model_runner {
 public:
  cpu_runner(std::shared_ptr<const engine::loaded_model> model, const cpu_options& opts, int32_t max_ctx, int32_t n_slots)
      : model_(std::move(model)),
        view_(*model_, quant_dtype(opts.quant)),
        kv_(model_->config.n_layers, max_ctx, model_->config.kv_dim(), n_slots),
        pool_(opts.reference ? 1 : opts.threads),
        batched_(view_, kv_, pool_),
        reference_(opts.reference) {}

  const engine::model_config& config() const override { return model_->config; }
  int32_t n_slots() const override { return kv_.n_slots(); }
  int32_t max_ctx() const override { return kv_.max_ctx(); }
  size_t kv_bytes_per_token() const override {
    return 2 * static_cast<size_t>(model_->config.n_layers) * model_->config.kv_dim() * sizeof(float);
  }

  void forward(std::span<const engine::forward_item> items, std::span<float> logits) override {
    const size_t rows = logits_rows(items);
    check(items);
    const size_t vocab = static_cast<size_t>(model_->config.vocab_size);
    if (logits.size() < rows * vocab) {
      throw engine::model_error("forward: logits buffer holds " + std::to_string(logits.size()) + " floats, needs " +
                                std::to_string(rows * vocab));
    }
    if (!reference_) {
      batched_.run(items, logits.data(), nullptr);
      return;
    }
    float* out = logits.data();
    for (const auto& it : items) {
      for (size_t i = 0; i < it.tokens.size(); ++i) {
        const bool want = it.all_logits || i + 1 == it.tokens.size();
        reference_forward(view_, kv_, it.slot, it.tokens[i], it.start_pos + static_cast<int32_t>(i), want ? out : nullptr, nullptr);
        if (want) out += vocab;
      }
    }
  }

  void hidden_states(std::span<const engine::forward_item> items, std::span<float> hidden) override {
    check(items);
    size_t tokens = 0;
    for (const auto& it : items) tokens += it.tokens.size();
    const size_t dim = static_cast<size_t>(model_->config.hidden_size);
    if (hidden.size() < tokens * dim) {
      throw engine::model_error("hidden_states: buffer holds " + std::to_string(hidden.size()) + " floats, needs " +
                                std::to_string(tokens * dim));
    }
    if (!reference_) {
      batched_.run(items, nullptr, hidden.data());
      return;
    }
    float* out = hidden.data();
    for (const auto& it : items) {
      for (size_t i = 0; i < it.tokens.size(); ++i, out += dim) {
        reference_forward(view_, kv_, it.slot, it.tokens[i], it.start_pos + static_cast<int32_t>(i), nullptr, out);
      }
    }
  }

  void copy_slot(int32_t from, int32_t to, int32_t n_tokens) override {
    if (from < 0 || from >= n_slots() || to < 0 || to >= n_slots() || n_tokens < 0 || n_tokens > max_ctx()) {
      throw engine::model_error("copy_slot: slot or length out of range");
    }
    if (from == to) return;
    const size_t bytes = sizeof(float) * static_cast<size_t>(n_tokens) * kv_.kv_dim();
    for (int32_t l = 0; l < kv_.n_layers(); ++l) {
      std::memcpy(kv_.k(to, l, 0), kv_.k(from, l, 0), bytes);
      std::memcpy(kv_.v(to, l, 0), kv_.v(from, l, 0), bytes);
    }
  }

 private:
  // Rejects a bad batch before any slot is touched.
  void check(std::span<const engine::forward_item> items) const {
    std::set<int32_t> slots;
    for (const auto& it : items) {
      if (it.slot < 0 || it.slot >= n_slots()) throw engine::model_error("forward: slot " + std::to_string(it.slot) + " out of range");
      if (!slots.insert(it.slot).second) throw engine::model_error("forward: slot " + std::to_string(it.slot) + " appears twice in one batch");
      if (it.tokens.empty()) throw engine::model_error("forward: an item has no tokens");
      if (it.start_pos < 0 || static_cast<int64_t>(it.start_pos) + static_cast<int64_t>(it.tokens.size()) > max_ctx()) {
        throw engine::model_error("forward: positions " + std::to_string(it.start_pos) + ".." +
                                  std::to_string(it.start_pos + it.tokens.size()) + " exceed the context of " +
                                  std::to_string(max_ctx()));
      }
      for (int32_t t : it.tokens) {
        if (t < 0 || t >= model_->config.vocab_size) throw engine::model_error("forward: token id " + std::to_string(t) + " is outside the vocabulary");
      }
    }
  }

  std::shared_ptr<const engine::loaded_model> model_;
  model_view view_;
  kv_pool kv_;
  thread_pool pool_;
  batched_forward batched_;
  bool reference_;
};

}  // namespace

std::unique_ptr<engine::model_runner> make_cpu_runner(std::shared_ptr<const engine::loaded_model> model,
                                                      const cpu_options& opts) {
  if (!model) throw engine::model_error("make_cpu_runner: no model");
  const auto& c = model->config;
  const int32_t max_ctx = opts.max_ctx > 0 ? std::min(opts.max_ctx, c.max_position_embeddings) : c.max_position_embeddings;
  const size_t per_token = 2 * static_cast<size_t>(c.n_layers) * c.kv_dim() * sizeof(float);
  const size_t per_slot = per_token * static_cast<size_t>(max_ctx);
  const size_t pool_bytes = opts.kv_cache_mb * (size_t{1} << 20);
  const size_t fit = per_slot == 0 ? 0 : pool_bytes / per_slot;
  if (fit == 0) {
    throw engine::model_error("kv_cache_mb = " + std::to_string(opts.kv_cache_mb) + " cannot hold one sequence of " +
                              std::to_string(max_ctx) + " positions (" + std::to_string(per_slot >> 20) + " MiB needed)");
  }
  const int32_t cap = opts.max_slots > 0 ? opts.max_slots : default_max_slots;
  const auto n_slots = static_cast<int32_t>(std::min<size_t>(fit, static_cast<size_t>(cap)));
  spdlog::info("cpu runner: {} slots x {} positions, {} KiB per token, {} path, weights {}", n_slots, max_ctx,
               per_token >> 10, opts.reference ? "reference" : "batched", opts.quant.empty() ? "as stored" : opts.quant);
  return std::make_unique<cpu_runner>(std::move(model), opts, max_ctx, n_slots);
}

}  // namespace moat::cpu

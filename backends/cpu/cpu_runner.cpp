#include "cpu/cpu_runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "cpu/batched_forward.h"
#include "cpu/model_view.h"
#include "cpu/paged_kv.h"
#include "cpu/reference_forward.h"
#include "cpu/thread_pool.h"
#include "engine/model_error.h"

namespace moat::cpu {

namespace {

// The scheduler keeps ~50 bytes of bookkeeping per block: a pool past a million blocks (16M
// positions at the default block size) is capped rather than paid for.
constexpr int64_t max_pool_blocks = int64_t{1} << 20;

engine::dtype quant_dtype(const std::string& name) {
  if (name.empty()) return engine::dtype::f32;
  if (auto d = parse_quant(name)) return *d;
  throw engine::model_error("quant: '" + name + "' is not one of int8, int4, nf4");
}

kv_dtype kv_type(const std::string& name) {
  if (name.empty()) return kv_dtype::f32;
  if (auto d = parse_kv_dtype(name)) return *d;
  throw engine::model_error("kv_dtype: '" + name + "' is not one of f32, int8");
}

class cpu_runner final : public engine::model_runner {
 public:
  cpu_runner(std::shared_ptr<const engine::loaded_model> model, const cpu_options& opts, int32_t max_ctx,
             int32_t block_size, int32_t n_blocks, int32_t host_blocks)
      : model_(std::move(model)),
        view_(*model_, quant_dtype(opts.quant)),
        kv_(model_->config.n_layers, model_->config.n_kv_heads, model_->config.head_dim, block_size, n_blocks,
            kv_type(opts.kv_dtype)),
        max_ctx_(max_ctx),
        pool_(opts.reference ? 1 : opts.threads),
        batched_(view_, kv_, pool_, max_ctx),
        reference_(opts.reference) {
    if (host_blocks > 0) {
      const auto& c = model_->config;
      host_ = std::make_unique<paged_kv>(c.n_layers, c.n_kv_heads, c.head_dim, block_size, host_blocks, kv_.type());
    }
  }

  const engine::model_config& config() const override { return model_->config; }
  int32_t max_ctx() const override { return max_ctx_; }
  int32_t n_blocks() const override { return kv_.n_blocks(); }
  int32_t block_size() const override { return kv_.block_size(); }
  size_t kv_bytes_per_token() const override {
    const auto& c = model_->config;
    return paged_kv::bytes_per_token(c.n_layers, c.n_kv_heads, c.head_dim, kv_.type());
  }

  void forward(std::span<const engine::forward_item> items, std::span<float> logits) override {
    const size_t rows = logits_rows(items);
    resolve(items);
    const size_t vocab = static_cast<size_t>(model_->config.vocab_size);
    if (logits.size() < rows * vocab) {
      throw engine::model_error("forward: logits buffer holds " + std::to_string(logits.size()) + " floats, needs " +
                                std::to_string(rows * vocab));
    }
    if (!reference_) {
      batched_.run(items, tables_, logits.data(), nullptr);
      return;
    }
    float* out = logits.data();
    for (size_t n = 0; n < items.size(); ++n) {
      const auto& it = items[n];
      for (size_t i = 0; i < it.tokens.size(); ++i) {
        const bool want = it.all_logits || i + 1 == it.tokens.size();
        reference_forward(view_, kv_, tables_[n], it.tokens[i], it.start_pos + static_cast<int32_t>(i),
                          want ? out : nullptr, nullptr);
        if (want) out += vocab;
      }
    }
  }

  void hidden_states(std::span<const engine::forward_item> items, std::span<float> hidden) override {
    resolve(items);
    size_t tokens = 0;
    for (const auto& it : items) tokens += it.tokens.size();
    const size_t dim = static_cast<size_t>(model_->config.hidden_size);
    if (hidden.size() < tokens * dim) {
      throw engine::model_error("hidden_states: buffer holds " + std::to_string(hidden.size()) + " floats, needs " +
                                std::to_string(tokens * dim));
    }
    if (!reference_) {
      batched_.run(items, tables_, nullptr, hidden.data());
      return;
    }
    float* out = hidden.data();
    for (size_t n = 0; n < items.size(); ++n) {
      const auto& it = items[n];
      for (size_t i = 0; i < it.tokens.size(); ++i, out += dim) {
        reference_forward(view_, kv_, tables_[n], it.tokens[i], it.start_pos + static_cast<int32_t>(i), nullptr, out);
      }
    }
  }

  void copy_block(int32_t from, int32_t to, int32_t n_tokens) override {
    if (from < 0 || from >= n_blocks() || to < 0 || to >= n_blocks() || n_tokens < 0 || n_tokens > block_size()) {
      throw engine::model_error("copy_block: block or length out of range");
    }
    if (from != to) kv_.copy(from, to, n_tokens);
  }

  int32_t host_blocks() const override { return host_ ? host_->n_blocks() : 0; }
  void swap_out(std::span<const engine::block_move> moves) override {
    check_moves(moves, /*to_host=*/true, "swap_out");
    for (const auto& m : moves) paged_kv::copy_block(kv_, m.device, *host_, m.host);
  }
  void swap_in(std::span<const engine::block_move> moves) override {
    check_moves(moves, /*to_host=*/false, "swap_in");
    for (const auto& m : moves) paged_kv::copy_block(*host_, m.host, kv_, m.device);
  }

 private:
  // Checks the batch and fills tables_ (one block table per item; a legacy slot becomes its
  // fixed run of blocks). Throws before any block is touched.
  void resolve(std::span<const engine::forward_item> items) {
    tables_ = checked_tables(items, legacy_, "forward");
  }

  std::shared_ptr<const engine::loaded_model> model_;
  model_view view_;
  paged_kv kv_;
  std::unique_ptr<paged_kv> host_;  // the host store (same layout); null without host_kv_mb
  int32_t max_ctx_;
  thread_pool pool_;
  batched_forward batched_;
  bool reference_;
  std::vector<std::span<const int32_t>> tables_;  // per item of the current call
  std::vector<std::vector<int32_t>> legacy_;      // tables made for legacy slot items
};

}  // namespace

std::unique_ptr<engine::model_runner> make_cpu_runner(std::shared_ptr<const engine::loaded_model> model,
                                                      const cpu_options& opts) {
  if (!model) throw engine::model_error("make_cpu_runner: no model");
  const auto& c = model->config;
  const int32_t max_ctx = opts.max_ctx > 0 ? std::min(opts.max_ctx, c.max_position_embeddings) : c.max_position_embeddings;
  if (opts.kv_block_size < 1 || opts.kv_block_size > (1 << 20)) {
    throw engine::model_error("kv_block_size = " + std::to_string(opts.kv_block_size) + " is outside 1..1048576");
  }
  const int32_t bs = opts.kv_block_size;
  const kv_dtype type = kv_type(opts.kv_dtype);
  const size_t per_token = paged_kv::bytes_per_token(c.n_layers, c.n_kv_heads, c.head_dim, type);
  const size_t per_block = per_token * static_cast<size_t>(bs);
  const int64_t per_seq = (max_ctx + bs - 1) / bs;
  const size_t pool_bytes = opts.kv_cache_mb * (size_t{1} << 20);
  int64_t n_blocks = per_block == 0 ? 0 : static_cast<int64_t>(std::min<size_t>(pool_bytes / per_block, max_pool_blocks));
  if (opts.max_slots > 0) n_blocks = std::min(n_blocks, opts.max_slots * per_seq);
  if (n_blocks < per_seq) {
    throw engine::model_error("kv_cache_mb = " + std::to_string(opts.kv_cache_mb) + " cannot hold one sequence of " +
                              std::to_string(max_ctx) + " positions (" +
                              std::to_string((per_block * static_cast<size_t>(per_seq)) >> 20) + " MiB needed)");
  }
  const int64_t host_blocks =
      per_block == 0 ? 0
                     : static_cast<int64_t>(std::min<size_t>(opts.host_kv_mb * (size_t{1} << 20) / per_block, max_pool_blocks));
  spdlog::info("cpu runner: {} KV blocks x {} positions ({} {} KiB per token), {} host blocks, context {}, {} path, "
               "weights {}",
               n_blocks, bs, type == kv_dtype::f32 ? "f32," : "int8,", per_token >> 10, host_blocks, max_ctx,
               opts.reference ? "reference" : "batched", opts.quant.empty() ? "as stored" : opts.quant);
  return std::make_unique<cpu_runner>(std::move(model), opts, max_ctx, bs, static_cast<int32_t>(n_blocks),
                                      static_cast<int32_t>(host_blocks));
}

}  // namespace moat::cpu

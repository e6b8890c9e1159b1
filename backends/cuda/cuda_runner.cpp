#include "cuda_runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "cuda_memory.h"
#include "cuda_weights.h"
#include "kv_blocks.h"
#include "kv_swap.h"
#include "kernels/add.cuh"
#include "kernels/gemv.cuh"
#include "kernels/kv_write.cuh"
#include "kernels/paged_attention.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/rope.cuh"
#include "kernels/swiglu.cuh"

namespace moat::cuda {

int32_t cuda_device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = fmt::format("no usable CUDA device ({})", cudaGetErrorString(e));
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device found";
  return n;
}

namespace {

constexpr int32_t k_block = 16;  // KV positions per block

struct layer_dev {
  device_buffer<float> attn_norm, ffn_norm;
  device_weight wq, wk, wv, wo, w_gate, w_up, w_down;
};

class cuda_runner final : public engine::model_runner {
 public:
  cuda_runner(std::shared_ptr<const engine::loaded_model> model, const cuda_options& o) : model_(std::move(model)) {
    const auto& c = model_->config;
    std::string why;
    const int32_t n_dev = cuda_device_count(&why);
    if (n_dev == 0) throw engine::model_error("cuda: " + why);
    if (o.device < 0 || o.device >= n_dev)
      throw engine::model_error(fmt::format("cuda: device {} does not exist ({} found)", o.device, n_dev));
    if (!known_weight_format(o.weights))
      throw engine::model_error(fmt::format("cuda: unknown weights format '{}'", o.weights));
    device_ = o.device;
    check(cudaSetDevice(device_), "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");

    max_ctx_ = o.max_ctx > 0 ? o.max_ctx : c.max_position_embeddings;
    blocks_per_slot_ = (max_ctx_ + k_block - 1) / k_block;
    const size_t slot_bytes = kv_bytes_per_token() * static_cast<size_t>(blocks_per_slot_) * k_block;
    n_slots_ = static_cast<int32_t>(std::min<size_t>(o.kv_cache_mb * 1024 * 1024 / slot_bytes, 256));
    if (o.max_slots > 0) n_slots_ = std::min(n_slots_, o.max_slots);
    if (n_slots_ < 1)
      throw engine::model_error(fmt::format("cuda: kv_cache_mb {} cannot hold one sequence of {} positions ({} MiB)",
                                            o.kv_cache_mb, max_ctx_, slot_bytes >> 20));

    const auto& w = model_->weights;
    for (const auto& l : w.layers) {
      layer_dev d;
      d.attn_norm = upload_f32(l.attn_norm, stream_);
      d.ffn_norm = upload_f32(l.ffn_norm, stream_);
      d.wq = upload_weight(l.wq, o.weights, o.int4_group, stream_);
      d.wk = upload_weight(l.wk, o.weights, o.int4_group, stream_);
      d.wv = upload_weight(l.wv, o.weights, o.int4_group, stream_);
      d.wo = upload_weight(l.wo, o.weights, o.int4_group, stream_);
      d.w_gate = upload_weight(l.w_gate, o.weights, o.int4_group, stream_);
      d.w_up = upload_weight(l.w_up, o.weights, o.int4_group, stream_);
      d.w_down = upload_weight(l.w_down, o.weights, o.int4_group, stream_);
      layers_.push_back(std::move(d));
    }
    final_norm_ = upload_f32(w.final_norm, stream_);
    lm_head_ = upload_weight(w.lm_head, o.weights, o.int4_group, stream_);
    const auto inv = engine::rope_inv_freq(c);
    inv_freq_.upload(inv.data(), inv.size(), stream_);

    const size_t pool = static_cast<size_t>(n_slots_) * blocks_per_slot_ * k_block * c.kv_dim();
    for (int32_t l = 0; l < c.n_layers; ++l) {
      k_pool_.emplace_back(pool);
      v_pool_.emplace_back(pool);
    }
    const int32_t host_blocks = host_kv_blocks_for(o.host_kv_mb, c.n_layers, block_bytes());
    if (host_blocks > 0) host_ = std::make_unique<host_kv_pool>(c.n_layers, host_blocks, block_bytes());
    check(cudaStreamSynchronize(stream_), "model upload");
  }

  ~cuda_runner() override {
    if (stream_ != nullptr) {
      cudaSetDevice(device_);
      cudaStreamDestroy(stream_);
    }
  }

  const engine::model_config& config() const override { return model_->config; }
  int32_t max_ctx() const override { return max_ctx_; }
  int32_t n_blocks() const override { return n_slots_ * blocks_per_slot_; }
  int32_t block_size() const override { return k_block; }
  size_t kv_bytes_per_token() const override {
    return 2 * static_cast<size_t>(model_->config.n_layers) * model_->config.kv_dim() * sizeof(float);
  }

  void forward(std::span<const engine::forward_item> items, std::span<float> logits) override {
    const size_t rows = logits_rows(items);
    if (logits.size() < rows * model_->config.vocab_size)
      throw engine::model_error("cuda: logits buffer too small for the batch");
    run(items, /*want_hidden=*/false);
    // Rows that get logits: every token of an all_logits item, else its last token.
    std::vector<int32_t> pick;
    int32_t t = 0;
    for (const auto& it : items) {
      const auto n = static_cast<int32_t>(it.tokens.size());
      for (int32_t j = 0; j < n; ++j)
        if (it.all_logits || j == n - 1) pick.push_back(t + j);
      t += n;
    }
    const int32_t dim = model_->config.hidden_size, vocab = model_->config.vocab_size;
    sel_.resize(pick.size() * dim);
    for (size_t i = 0; i < pick.size(); ++i)
      check(cudaMemcpyAsync(sel_.get() + i * dim, xb_.get() + static_cast<size_t>(pick[i]) * dim, dim * sizeof(float),
                            cudaMemcpyDeviceToDevice, stream_),
            "gather rows");
    logits_.resize(pick.size() * vocab);
    check(kernels::gemv(lm_head_.view, sel_.get(), static_cast<int32_t>(pick.size()), logits_.get(), stream_), "lm_head");
    check(cudaMemcpyAsync(logits.data(), logits_.get(), pick.size() * vocab * sizeof(float), cudaMemcpyDeviceToHost,
                          stream_),
          "download logits");
    check(cudaStreamSynchronize(stream_), "forward");
  }

  void hidden_states(std::span<const engine::forward_item> items, std::span<float> hidden) override {
    size_t n = 0;
    for (const auto& it : items) n += it.tokens.size();
    const size_t dim = model_->config.hidden_size;
    if (hidden.size() < n * dim) throw engine::model_error("cuda: hidden buffer too small for the batch");
    run(items, true);
    check(cudaMemcpyAsync(hidden.data(), xb_.get(), n * dim * sizeof(float), cudaMemcpyDeviceToHost, stream_),
          "download hidden");
    check(cudaStreamSynchronize(stream_), "hidden_states");
  }

  void copy_block(int32_t from, int32_t to, int32_t n_tokens) override {
    if (from < 0 || from >= n_blocks() || to < 0 || to >= n_blocks() || n_tokens < 0 || n_tokens > k_block)
      throw engine::model_error("cuda: copy_block out of range");
    if (from == to || n_tokens == 0) return;
    check(cudaSetDevice(device_), "cudaSetDevice");
    const size_t kv = model_->config.kv_dim();
    const size_t bytes = static_cast<size_t>(n_tokens) * kv * sizeof(float);  // a block's rows are contiguous
    for (size_t l = 0; l < k_pool_.size(); ++l)
      for (auto* pool : {&k_pool_[l], &v_pool_[l]})
        check(cudaMemcpyAsync(pool->get() + static_cast<size_t>(to) * k_block * kv,
                              pool->get() + static_cast<size_t>(from) * k_block * kv, bytes, cudaMemcpyDeviceToDevice,
                              stream_),
              "copy_block");
    check(cudaStreamSynchronize(stream_), "copy_block");
  }

  int32_t host_blocks() const override { return host_ ? host_->blocks() : 0; }
  void swap_out(std::span<const engine::block_move> moves) override {
    check_moves(moves, /*to_host=*/true, "cuda: swap_out");
    swap(swap_runs(moves, true), cudaMemcpyDeviceToHost);
  }
  void swap_in(std::span<const engine::block_move> moves) override {
    check_moves(moves, /*to_host=*/false, "cuda: swap_in");
    swap(swap_runs(moves, false), cudaMemcpyHostToDevice);
  }

 private:
  // Checks the batch (engine::model_runner::checked_tables) and returns one block table per
  // item, exactly as long as the item's positions need; legacy slot tables live in legacy_.
  std::vector<std::span<const int32_t>> validate(std::span<const engine::forward_item> items) {
    return checked_tables(items, legacy_, "cuda");
  }

  // Bytes of one block in one layer's K (or V) pool: [k_block][kv_dim] f32, contiguous.
  size_t block_bytes() const { return static_cast<size_t>(k_block) * model_->config.kv_dim() * sizeof(float); }

  // Copies the runs between the device pools and the pinned host pool, every layer, K and V.
  // Synchronized: the scheduler reuses the source blocks as soon as the call returns.
  void swap(const std::vector<copy_run>& runs, cudaMemcpyKind kind) {
    if (runs.empty()) return;
    check(cudaSetDevice(device_), "cudaSetDevice");
    const bool out = kind == cudaMemcpyDeviceToHost;
    for (size_t l = 0; l < k_pool_.size(); ++l) {
      const auto layer = static_cast<int32_t>(l);
      void* dev_k = k_pool_[l].get();
      void* dev_v = v_pool_[l].get();
      copy_runs(runs, out ? dev_k : host_->k(layer), out ? host_->k(layer) : dev_k, block_bytes(), kind, stream_);
      copy_runs(runs, out ? dev_v : host_->v(layer), out ? host_->v(layer) : dev_v, block_bytes(), kind, stream_);
    }
    check(cudaStreamSynchronize(stream_), out ? "KV swap out" : "KV swap in");
  }

  // The layers for every token of every item; leaves the final-normed hidden state in xb_
  // ([n_tokens][hidden]).
  void run(std::span<const engine::forward_item> items, bool) {
    const auto item_tables = validate(items);
    check(cudaSetDevice(device_), "cudaSetDevice");  // the calling thread may not be the creating one
    const auto& c = model_->config;
    const int32_t dim = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim(), inter = c.intermediate_size;
    // Host-side per-token tables: embeddings, positions, the item of each token, and per token
    // a block table row (the item's table, padded with block 0 past its length; the kernel reads
    // only the blocks under seq_len) and its attended length (pos + 1: causal within a chunk).
    std::vector<int32_t> pos, item_of;
    for (size_t i = 0; i < items.size(); ++i)
      for (size_t j = 0; j < items[i].tokens.size(); ++j) {
        pos.push_back(items[i].start_pos + static_cast<int32_t>(j));
        item_of.push_back(static_cast<int32_t>(i));
      }
    const auto n = static_cast<int32_t>(pos.size());
    std::vector<float> x_host(static_cast<size_t>(n) * dim);
    std::vector<int32_t> tables(static_cast<size_t>(n) * blocks_per_slot_), lens(n), rows(n);
    int32_t t = 0;
    for (const auto& it : items)
      for (int32_t tok : it.tokens) {
        model_->weights.embed.row_to_f32(tok, x_host.data() + static_cast<size_t>(t) * dim);
        const auto& table = item_tables[static_cast<size_t>(item_of[t])];
        for (size_t b = 0; b < table.size(); ++b) tables[static_cast<size_t>(t) * blocks_per_slot_ + b] = table[b];
        lens[t] = pos[t] + 1;
        // Pool row of (block, offset) for position pos: the block's rows are contiguous.
        rows[t] = table[static_cast<size_t>(pos[t] / k_block)] * k_block + pos[t] % k_block;
        ++t;
      }
    x_.upload(x_host.data(), x_host.size(), stream_);
    pos_.upload(pos.data(), pos.size(), stream_);
    tables_.upload(tables.data(), tables.size(), stream_);
    lens_.upload(lens.data(), lens.size(), stream_);
    rows_.upload(rows.data(), rows.size(), stream_);
    xb_.resize(static_cast<size_t>(n) * dim);
    proj_.resize(static_cast<size_t>(n) * dim);
    q_.resize(static_cast<size_t>(n) * qd);
    att_.resize(static_cast<size_t>(n) * qd);
    k_.resize(static_cast<size_t>(n) * kvd);
    v_.resize(static_cast<size_t>(n) * kvd);
    h1_.resize(static_cast<size_t>(n) * inter);
    h3_.resize(static_cast<size_t>(n) * inter);
    const auto pairs = c.rope == engine::rope_style::rotate_half ? kernels::rope_pairs::rotate_half
                                                                 : kernels::rope_pairs::adjacent;
    for (int32_t l = 0; l < c.n_layers; ++l) {
      const auto& L = layers_[l];
      check(kernels::rmsnorm(x_.get(), L.attn_norm.get(), c.rms_norm_eps, n, dim, xb_.get(), stream_), "rmsnorm");
      check(kernels::gemv(L.wq.view, xb_.get(), n, q_.get(), stream_), "wq");
      check(kernels::gemv(L.wk.view, xb_.get(), n, k_.get(), stream_), "wk");
      check(kernels::gemv(L.wv.view, xb_.get(), n, v_.get(), stream_), "wv");
      check(kernels::rope(q_.get(), pos_.get(), inv_freq_.get(), n, c.n_heads, c.head_dim, pairs, stream_), "rope q");
      check(kernels::rope(k_.get(), pos_.get(), inv_freq_.get(), n, c.n_kv_heads, c.head_dim, pairs, stream_), "rope k");
      check(kernels::kv_write(k_.get(), v_.get(), rows_.get(), n, kvd, k_pool_[l].get(), v_pool_[l].get(), stream_),
            "kv write");
      kernels::paged_attention_args a;
      a.q = q_.get();
      a.k_pool = k_pool_[l].get();
      a.v_pool = v_pool_[l].get();
      a.block_tables = tables_.get();
      a.seq_lens = lens_.get();
      a.out = att_.get();
      a.n_seq = n;
      a.n_heads = c.n_heads;
      a.n_kv_heads = c.n_kv_heads;
      a.head_dim = c.head_dim;
      a.block_size = k_block;
      a.max_blocks = blocks_per_slot_;
      a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
      check(kernels::paged_attention(a, stream_), "attention");
      check(kernels::gemv(L.wo.view, att_.get(), n, proj_.get(), stream_), "wo");
      check(kernels::add(x_.get(), proj_.get(), static_cast<int64_t>(n) * dim, stream_), "residual");
      check(kernels::rmsnorm(x_.get(), L.ffn_norm.get(), c.rms_norm_eps, n, dim, xb_.get(), stream_), "rmsnorm");
      check(kernels::gemv(L.w_gate.view, xb_.get(), n, h1_.get(), stream_), "w_gate");
      check(kernels::gemv(L.w_up.view, xb_.get(), n, h3_.get(), stream_), "w_up");
      check(kernels::swiglu(h1_.get(), h3_.get(), static_cast<int64_t>(n) * inter, stream_), "swiglu");
      check(kernels::gemv(L.w_down.view, h1_.get(), n, proj_.get(), stream_), "w_down");
      check(kernels::add(x_.get(), proj_.get(), static_cast<int64_t>(n) * dim, stream_), "residual");
    }
    check(kernels::rmsnorm(x_.get(), final_norm_.get(), c.rms_norm_eps, n, dim, xb_.get(), stream_), "final norm");
    // The host vectors above are read by the async uploads: wait before they go out of scope.
    check(cudaStreamSynchronize(stream_), "forward");
  }

  std::shared_ptr<const engine::loaded_model> model_;
  int32_t device_ = 0;
  cudaStream_t stream_ = nullptr;
  int32_t max_ctx_ = 0, blocks_per_slot_ = 0, n_slots_ = 0;
  std::vector<layer_dev> layers_;
  device_buffer<float> final_norm_, inv_freq_;
  device_weight lm_head_;
  std::vector<device_buffer<float>> k_pool_, v_pool_;  // per layer
  std::unique_ptr<host_kv_pool> host_;                 // swapped-out blocks; null without host_kv_mb
  std::vector<std::vector<int32_t>> legacy_;           // block tables made for legacy slot items
  // Activations, grown to the largest batch seen.
  device_buffer<float> x_, xb_, proj_, q_, att_, k_, v_, h1_, h3_, sel_, logits_;
  device_buffer<int32_t> pos_, tables_, lens_, rows_;
};

}  // namespace

std::unique_ptr<engine::model_runner> make_cuda_runner(std::shared_ptr<const engine::loaded_model> model,
                                                       const cuda_options& opts) {
  return std::make_unique<cuda_runner>(std::move(model), opts);
}

}  // namespace moat::cuda

#include "tp_runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "cublaslt_gemm.h"
#include "cuda_graphs.h"
#include "cuda_memory.h"
#include "cuda_runner.h"
#include "cuda_weights.h"
#include "graph_cache.h"
#include "kernels/add.cuh"
#include "kernels/convert.cuh"
#include "kernels/gemv.cuh"
#include "kernels/kv_write.cuh"
#include "kernels/paged_attention.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/rope.cuh"
#include "kernels/swiglu.cuh"
#include "nccl_comm.h"
#include "tp_upload.h"
#include "tp_workers.h"

namespace moat::cuda {

namespace {

constexpr int32_t k_block = 16;  // KV positions per block, as the single-GPU runner

// What every rank reads for one step, prepared once on the calling thread. Read-only during
// the step; the ranks' async uploads read it, so each rank synchronizes before the step ends.
struct batch {
  int32_t n = 0;                       // tokens (the real ones)
  int32_t rows = 0;                    // n, or n padded to a graph bucket (empty rows after n)
  std::vector<float> x;                // [n][hidden] embeddings
  std::vector<int32_t> pos, tables, lens;
  std::vector<int32_t> kv_rows;        // pool row each token's K/V goes to
  std::vector<int32_t> pick;           // token rows that get logits
};

struct rank_state {
  int32_t device = 0;
  cudaStream_t stream = nullptr;
  device_shard shard;
  device_buffer<float> inv_freq;
  std::vector<device_buffer<float>> k_pool, v_pool;  // per layer, local kv heads
  device_buffer<float> x, xb, proj, q, att, k, v, h1, h3, sel, logits;
  device_buffer<int32_t> pos, tables, lens, rows;
  std::unique_ptr<lt_gemm> gemm;  // prefill of 16-bit weights on tensor cores
  device_buffer<uint16_t> x16;    // activations rounded for it
  // Decode graphs (options.cuda_graphs): the stream wrapper, the cache, and the buffer
  // addresses the graphs were captured with (a change bumps the layout epoch).
  std::unique_ptr<cuda_graph_stream> gstream;
  std::unique_ptr<graph_cache> graphs;
  std::vector<const void*> captured_with;
  uint64_t epoch = 0;
};

// y = W x for n tokens: cuBLASLt for 16-bit weights once there are enough tokens to reuse
// them (prefill), the fused GEMV kernel otherwise (decode, quantized and f32 weights).
void linear(rank_state& s, const kernels::gemv_weights& w, const float* x, int32_t n, float* y, const char* what) {
  const bool sixteen = w.format == kernels::weight_format::f16 || w.format == kernels::weight_format::bf16;
  if (s.gemm && sixteen && prefer_lt_gemm(w.format == kernels::weight_format::bf16 ? "bf16" : "f16", n)) {
    const size_t count = static_cast<size_t>(n) * static_cast<size_t>(w.cols);
    s.x16.resize(count);
    const bool bf16 = w.format == kernels::weight_format::bf16;
    check(kernels::f32_to_16(x, s.x16.get(), static_cast<int64_t>(count), bf16, s.stream), what);
    s.gemm->run(bf16 ? lt_type::bf16 : lt_type::f16, s.x16.get(), w.data, y, n, static_cast<int32_t>(w.rows),
                static_cast<int32_t>(w.cols), s.stream);
    return;
  }
  check(kernels::gemv(w, x, n, y, s.stream), what);
}

class tp_runner final : public engine::model_runner {
 public:
  tp_runner(std::shared_ptr<const engine::loaded_model> model, const tp_runner_options& o) : model_(std::move(model)) {
    const auto& c = model_->config;
    if (o.devices.empty()) throw engine::model_error("cuda: tensor parallel needs at least one device");
    if (!known_weight_format(o.weights))
      throw engine::model_error(fmt::format("cuda: unknown weights format '{}'", o.weights));
    std::string why;
    const int32_t n_dev = cuda_device_count(&why);
    if (n_dev == 0) throw engine::model_error("cuda: " + why);
    const auto world = static_cast<int32_t>(o.devices.size());
    plan_ = engine::tp_plan::make(c, world);  // throws when world does not divide the model
    max_ctx_ = o.max_ctx > 0 ? o.max_ctx : c.max_position_embeddings;
    blocks_per_slot_ = (max_ctx_ + k_block - 1) / k_block;
    // The budget is per GPU and each rank stores only its kv heads.
    const size_t local_token = 2 * static_cast<size_t>(c.n_layers) * plan_.kv_heads_per_rank * c.head_dim * sizeof(float);
    const size_t slot_bytes = local_token * static_cast<size_t>(blocks_per_slot_) * k_block;
    n_slots_ = static_cast<int32_t>(std::min<size_t>(o.kv_cache_mb * 1024 * 1024 / slot_bytes, 256));
    if (o.max_slots > 0) n_slots_ = std::min(n_slots_, o.max_slots);
    if (n_slots_ < 1)
      throw engine::model_error(fmt::format("cuda: kv_cache_mb {} per GPU cannot hold one sequence of {} positions",
                                            o.kv_cache_mb, max_ctx_));
    graphs_on_ = o.cuda_graphs && o.graph_max_batch > 0;
    graph_max_batch_ = std::max(1, o.graph_max_batch);
    buckets_ = graph_buckets::defaults(graph_max_batch_);
    comm_ = std::make_unique<nccl_group>(o.devices);
    ranks_.resize(static_cast<size_t>(world));
    for (int32_t r = 0; r < world; ++r) ranks_[r].device = o.devices[static_cast<size_t>(r)];
    nccl_group* comm = comm_.get();
    workers_ = std::make_unique<tp_workers>(
        world, [&](int32_t r) { init_rank(r, o); }, [comm] { comm->abort(); });
  }

  ~tp_runner() override {
    // Free every rank's memory and stream on its own thread (its device current), then stop.
    try {
      if (workers_ && !workers_->broken()) workers_->run([this](int32_t r) { release(ranks_[r]); });
    } catch (...) {  // a failing device: what is left is freed with the process
    }
    workers_.reset();
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
    const int32_t vocab = model_->config.vocab_size;
    if (logits.size() < rows * static_cast<size_t>(vocab))
      throw engine::model_error("cuda: logits buffer too small for the batch");
    // A decode step (one token per item) of a batch a graph bucket holds runs as a graph.
    bool decode = graphs_on_ && static_cast<int32_t>(items.size()) <= graph_max_batch_;
    for (const auto& it : items) decode = decode && it.tokens.size() == 1;
    const int32_t pad = decode ? buckets_.bucket_for(static_cast<int32_t>(items.size())) : -1;
    const batch b = prepare(items, pad);
    workers_->run([&](int32_t r) {
      rank_state& s = ranks_[r];
      if (pad > 0) {
        decode_step(r, b, logits);
        return;
      }
      upload(r, b);
      layers(r, b.rows);
      const int32_t dim = model_->config.hidden_size;
      const auto np = static_cast<int32_t>(b.pick.size());
      s.sel.resize(static_cast<size_t>(np) * dim);
      for (int32_t i = 0; i < np; ++i)
        check(cudaMemcpyAsync(s.sel.get() + static_cast<size_t>(i) * dim, s.xb.get() + static_cast<size_t>(b.pick[i]) * dim,
                              dim * sizeof(float), cudaMemcpyDeviceToDevice, s.stream),
              "gather rows");
      const engine::tp_range vr = s.shard.vocab;
      s.logits.resize(static_cast<size_t>(np) * vr.size());
      check(kernels::gemv(s.shard.lm_head.view, s.sel.get(), np, s.logits.get(), s.stream), "lm_head");
      // This rank's vocabulary columns of every row, straight into the caller's buffer.
      check(cudaMemcpy2DAsync(logits.data() + vr.begin, static_cast<size_t>(vocab) * sizeof(float), s.logits.get(),
                              static_cast<size_t>(vr.size()) * sizeof(float), static_cast<size_t>(vr.size()) * sizeof(float),
                              static_cast<size_t>(np), cudaMemcpyDeviceToHost, s.stream),
            "download logits");
      check(cudaStreamSynchronize(s.stream), "forward");
    });
  }

  void hidden_states(std::span<const engine::forward_item> items, std::span<float> hidden) override {
    size_t n = 0;
    for (const auto& it : items) n += it.tokens.size();
    const size_t dim = model_->config.hidden_size;
    if (hidden.size() < n * dim) throw engine::model_error("cuda: hidden buffer too small for the batch");
    const batch b = prepare(items, -1);
    workers_->run([&](int32_t r) {
      upload(r, b);
      layers(r, b.rows);
      rank_state& s = ranks_[r];
      // Every rank holds the same (all-reduced) hidden state; rank 0 hands it back.
      if (r == 0)
        check(cudaMemcpyAsync(hidden.data(), s.xb.get(), n * dim * sizeof(float), cudaMemcpyDeviceToHost, s.stream),
              "download hidden");
      check(cudaStreamSynchronize(s.stream), "hidden_states");
    });
  }

  void copy_block(int32_t from, int32_t to, int32_t n_tokens) override {
    if (from < 0 || from >= n_blocks() || to < 0 || to >= n_blocks() || n_tokens < 0 || n_tokens > k_block)
      throw engine::model_error("cuda: copy_block out of range");
    if (from == to || n_tokens == 0) return;
    workers_->run([&](int32_t r) {
      rank_state& s = ranks_[r];
      const size_t kv = static_cast<size_t>(plan_.kv_heads_per_rank) * model_->config.head_dim;
      const size_t bytes = static_cast<size_t>(n_tokens) * kv * sizeof(float);
      for (size_t l = 0; l < s.k_pool.size(); ++l)
        for (auto* pool : {&s.k_pool[l], &s.v_pool[l]})
          check(cudaMemcpyAsync(pool->get() + static_cast<size_t>(to) * k_block * kv,
                                pool->get() + static_cast<size_t>(from) * k_block * kv, bytes, cudaMemcpyDeviceToDevice,
                                s.stream),
                "copy_block");
      check(cudaStreamSynchronize(s.stream), "copy_block");
    });
  }

 private:
  void init_rank(int32_t r, const tp_runner_options& o) {
    rank_state& s = ranks_[r];
    check(cudaSetDevice(s.device), "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cudaStreamCreate");
    s.shard = upload_tp_shard(*model_, plan_, r, o.weights, o.int4_group, s.stream);
    s.gemm = std::make_unique<lt_gemm>();
    const auto inv = engine::rope_inv_freq(model_->config);
    s.inv_freq.upload(inv.data(), inv.size(), s.stream);
    // One block more than n_blocks(): padded rows of a graph step write their K/V there.
    const size_t pool = (static_cast<size_t>(n_slots_) * blocks_per_slot_ + 1) * k_block * plan_.kv_heads_per_rank *
                        model_->config.head_dim;
    for (int32_t l = 0; l < model_->config.n_layers; ++l) {
      s.k_pool.emplace_back(pool);
      s.v_pool.emplace_back(pool);
    }
    if (graphs_on_) {
      // Every buffer a decode step touches, at its largest bucket, so decode steps never
      // reallocate (a reallocation would invalidate the graphs).
      const auto& c = model_->config;
      const auto& lc = s.shard.config;
      const auto cap = static_cast<size_t>(graph_max_batch_);
      s.x.resize(cap * c.hidden_size);
      s.xb.resize(cap * c.hidden_size);
      s.proj.resize(cap * c.hidden_size);
      s.q.resize(cap * lc.q_dim());
      s.att.resize(cap * lc.q_dim());
      s.k.resize(cap * lc.kv_dim());
      s.v.resize(cap * lc.kv_dim());
      s.h1.resize(cap * lc.intermediate_size);
      s.h3.resize(cap * lc.intermediate_size);
      s.logits.resize(cap * static_cast<size_t>(s.shard.vocab.size()));
      s.x16.resize(cap * static_cast<size_t>(std::max({c.hidden_size, lc.q_dim(), lc.intermediate_size})));
      s.pos.resize(cap);
      s.lens.resize(cap);
      s.rows.resize(cap);
      s.tables.resize(cap * static_cast<size_t>(blocks_per_slot_));
      s.gstream = std::make_unique<cuda_graph_stream>(s.stream);
      s.graphs = std::make_unique<graph_cache>(*s.gstream, buckets_, true);
    }
    check(cudaStreamSynchronize(s.stream), "model upload");
  }

  // One decode step from a graph: inputs uploaded into the fixed buffers, the layers and the
  // lm_head replayed (captured the first time for this bucket), the real rows' logits copied
  // out. Every rank runs b.rows rows whichever way its cache goes (a failed capture runs
  // eagerly, still padded), so the ranks' all-reduces always match.
  void decode_step(int32_t r, const batch& b, std::span<float> logits) {
    rank_state& s = ranks_[r];
    upload(r, b);
    const std::vector<const void*> now = {s.x.get(), s.xb.get(), s.proj.get(), s.q.get(),   s.att.get(),
                                          s.k.get(), s.v.get(),  s.h1.get(),   s.h3.get(),  s.logits.get(),
                                          s.x16.get(), s.pos.get(), s.lens.get(), s.rows.get(), s.tables.get()};
    if (now != s.captured_with) {
      s.captured_with = now;
      ++s.epoch;
    }
    s.graphs->set_layout({.table_width = blocks_per_slot_, .epoch = s.epoch});
    const engine::tp_range vr = s.shard.vocab;
    s.graphs->run(b.n, [&](int32_t) {
      layers(r, b.rows);
      check(kernels::gemv(s.shard.lm_head.view, s.xb.get(), b.rows, s.logits.get(), s.stream), "lm_head");
    });
    const int32_t vocab = model_->config.vocab_size;
    check(cudaMemcpy2DAsync(logits.data() + vr.begin, static_cast<size_t>(vocab) * sizeof(float), s.logits.get(),
                            static_cast<size_t>(vr.size()) * sizeof(float), static_cast<size_t>(vr.size()) * sizeof(float),
                            static_cast<size_t>(b.n), cudaMemcpyDeviceToHost, s.stream),
          "download logits");
    check(cudaStreamSynchronize(s.stream), "decode step");
  }

  static void release(rank_state& s) {
    s.graphs.reset();  // destroys the graphs before their stream
    s.gstream.reset();
    s.gemm.reset();
    cudaStream_t stream = s.stream;
    const int32_t device = s.device;
    s = rank_state{};  // frees the device buffers (this thread's device is the rank's)
    s.device = device;
    if (stream != nullptr) cudaStreamDestroy(stream);
  }

  // Validates the batch (engine::model_runner::checked_tables) and builds the host tables every
  // rank uploads.
  // pad_to > 0: rows up to pad_to are empty (zero input, length 0, K/V into the spare block).
  batch prepare(std::span<const engine::forward_item> items, int32_t pad_to) const {
    const auto& c = model_->config;
    batch b;
    std::vector<std::vector<int32_t>> legacy;
    const auto tables = checked_tables(items, legacy, "cuda");
    int32_t t = 0;
    for (size_t item = 0; item < items.size(); ++item) {
      const auto& it = items[item];
      const auto& table = tables[item];
      const auto n = static_cast<int32_t>(it.tokens.size());
      for (int32_t j = 0; j < n; ++j) {
        const int32_t tok = it.tokens[static_cast<size_t>(j)];
        const int32_t p = it.start_pos + j;
        b.x.resize(b.x.size() + static_cast<size_t>(c.hidden_size));
        model_->weights.embed.row_to_f32(tok, b.x.data() + static_cast<size_t>(t) * c.hidden_size);
        b.pos.push_back(p);
        b.lens.push_back(p + 1);  // causal within a chunk
        b.kv_rows.push_back(table[static_cast<size_t>(p / k_block)] * k_block + p % k_block);
        const size_t at = b.tables.size();
        b.tables.resize(at + static_cast<size_t>(blocks_per_slot_), 0);  // padded with block 0, never read
        std::copy(table.begin(), table.end(), b.tables.begin() + static_cast<ptrdiff_t>(at));
        if (it.all_logits || j == n - 1) b.pick.push_back(t);
        ++t;
      }
    }
    b.n = t;
    b.rows = t;
    for (; b.rows < pad_to; ++b.rows) {
      b.x.resize(b.x.size() + static_cast<size_t>(c.hidden_size), 0.0f);
      b.pos.push_back(0);
      b.lens.push_back(0);  // attention writes zeros for it
      b.kv_rows.push_back(n_blocks() * k_block);  // the spare block past n_blocks()
      b.tables.resize(b.tables.size() + static_cast<size_t>(blocks_per_slot_), 0);
    }
    return b;
  }

  // The batch's inputs into rank r's buffers (asynchronous; the step synchronizes before the
  // host vectors go).
  void upload(int32_t r, const batch& b) {
    rank_state& s = ranks_[r];
    s.x.upload(b.x.data(), b.x.size(), s.stream);
    s.pos.upload(b.pos.data(), b.pos.size(), s.stream);
    s.tables.upload(b.tables.data(), b.tables.size(), s.stream);
    s.lens.upload(b.lens.data(), b.lens.size(), s.stream);
    s.rows.upload(b.kv_rows.data(), b.kv_rows.size(), s.stream);
  }

  // The layers on rank r for n uploaded rows; leaves the final-normed hidden state in s.xb.
  // Only kernels and collectives on s.stream: the sequence a decode graph captures.
  void layers(int32_t r, int32_t n) {
    rank_state& s = ranks_[r];
    const auto& c = model_->config;
    const auto& lc = s.shard.config;  // this rank's heads and ffn rows
    const int32_t dim = c.hidden_size, qd = lc.q_dim(), kvd = lc.kv_dim(), inter = lc.intermediate_size;
    s.xb.resize(static_cast<size_t>(n) * dim);
    s.proj.resize(static_cast<size_t>(n) * dim);
    s.q.resize(static_cast<size_t>(n) * qd);
    s.att.resize(static_cast<size_t>(n) * qd);
    s.k.resize(static_cast<size_t>(n) * kvd);
    s.v.resize(static_cast<size_t>(n) * kvd);
    s.h1.resize(static_cast<size_t>(n) * inter);
    s.h3.resize(static_cast<size_t>(n) * inter);
    const auto pairs = c.rope == engine::rope_style::rotate_half ? kernels::rope_pairs::rotate_half
                                                                 : kernels::rope_pairs::adjacent;
    const size_t hidden_floats = static_cast<size_t>(n) * dim;
    for (int32_t l = 0; l < c.n_layers; ++l) {
      const auto& L = s.shard.layers[static_cast<size_t>(l)];
      check(kernels::rmsnorm(s.x.get(), L.attn_norm.get(), c.rms_norm_eps, n, dim, s.xb.get(), s.stream), "rmsnorm");
      linear(s, L.wq.view, s.xb.get(), n, s.q.get(), "wq");
      linear(s, L.wk.view, s.xb.get(), n, s.k.get(), "wk");
      linear(s, L.wv.view, s.xb.get(), n, s.v.get(), "wv");
      check(kernels::rope(s.q.get(), s.pos.get(), s.inv_freq.get(), n, lc.n_heads, c.head_dim, pairs, s.stream), "rope q");
      check(kernels::rope(s.k.get(), s.pos.get(), s.inv_freq.get(), n, lc.n_kv_heads, c.head_dim, pairs, s.stream),
            "rope k");
      check(kernels::kv_write(s.k.get(), s.v.get(), s.rows.get(), n, kvd, s.k_pool[l].get(), s.v_pool[l].get(), s.stream),
            "kv write");
      kernels::paged_attention_args a;
      a.q = s.q.get();
      a.k_pool = s.k_pool[l].get();
      a.v_pool = s.v_pool[l].get();
      a.block_tables = s.tables.get();
      a.seq_lens = s.lens.get();
      a.out = s.att.get();
      a.n_seq = n;
      a.n_heads = lc.n_heads;        // the rank's query heads use exactly its kv heads (GQA)
      a.n_kv_heads = lc.n_kv_heads;
      a.head_dim = c.head_dim;
      a.block_size = k_block;
      a.max_blocks = blocks_per_slot_;
      a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
      check(kernels::paged_attention(a, s.stream), "attention");
      // Row-parallel: a partial [n][hidden] per rank, summed over ranks.
      linear(s, L.wo.view, s.att.get(), n, s.proj.get(), "wo");
      comm_->all_reduce_sum(r, s.proj.get(), hidden_floats, s.stream);
      check(kernels::add(s.x.get(), s.proj.get(), static_cast<int64_t>(hidden_floats), s.stream), "residual");
      check(kernels::rmsnorm(s.x.get(), L.ffn_norm.get(), c.rms_norm_eps, n, dim, s.xb.get(), s.stream), "rmsnorm");
      linear(s, L.w_gate.view, s.xb.get(), n, s.h1.get(), "w_gate");
      linear(s, L.w_up.view, s.xb.get(), n, s.h3.get(), "w_up");
      check(kernels::swiglu(s.h1.get(), s.h3.get(), static_cast<int64_t>(n) * inter, s.stream), "swiglu");
      linear(s, L.w_down.view, s.h1.get(), n, s.proj.get(), "w_down");
      comm_->all_reduce_sum(r, s.proj.get(), hidden_floats, s.stream);
      check(kernels::add(s.x.get(), s.proj.get(), static_cast<int64_t>(hidden_floats), s.stream), "residual");
    }
    check(kernels::rmsnorm(s.x.get(), s.shard.final_norm.get(), c.rms_norm_eps, n, dim, s.xb.get(), s.stream),
          "final norm");
  }

  std::shared_ptr<const engine::loaded_model> model_;
  engine::tp_plan plan_;
  int32_t max_ctx_ = 0, blocks_per_slot_ = 0, n_slots_ = 0;
  bool graphs_on_ = false;
  int32_t graph_max_batch_ = 64;
  graph_buckets buckets_;
  std::unique_ptr<nccl_group> comm_;
  std::vector<rank_state> ranks_;
  std::unique_ptr<tp_workers> workers_;  // last: its threads stop before the state they use goes
};

}  // namespace

std::unique_ptr<engine::model_runner> make_tp_runner(std::shared_ptr<const engine::loaded_model> model,
                                                     const tp_runner_options& opts) {
  return std::make_unique<tp_runner>(std::move(model), opts);
}

}  // namespace moat::cuda

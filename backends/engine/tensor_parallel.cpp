#include "engine/tensor_parallel.h"

#include <algorithm>
#include <cstring>
#include <string>

#include <fmt/format.h>

namespace moat::engine {

namespace {

// Elements per block for the formats that store blocks; 1 for plain floats.
int64_t block_elems(dtype t) { return (t == dtype::q8_0 || t == dtype::q4_0) ? 32 : 1; }

tp_range even_split(int64_t total, int32_t world, int32_t rank) {
  const int64_t per = total / world;
  return {per * rank, per * (rank + 1)};
}

}  // namespace

tp_plan tp_plan::make(const model_config& cfg, int32_t world) {
  if (world < 1) throw model_error(fmt::format("tensor_parallel must be at least 1, got {}", world));
  auto need = [&](int32_t value, const char* what) {
    if (value % world != 0)
      throw model_error(fmt::format("tensor_parallel {} does not divide {} ({})", world, what, value));
  };
  need(cfg.n_heads, "the attention heads");
  need(cfg.n_kv_heads, "the key/value heads");
  need(cfg.intermediate_size, "intermediate_size");
  tp_plan p;
  p.world = world;
  p.heads_per_rank = cfg.n_heads / world;
  p.kv_heads_per_rank = cfg.n_kv_heads / world;
  p.ffn_per_rank = cfg.intermediate_size / world;
  p.head_dim = cfg.head_dim;
  p.vocab = cfg.vocab_size;
  return p;
}

tp_range tp_plan::q_rows(int32_t rank) const {
  return even_split(static_cast<int64_t>(heads_per_rank) * world * head_dim, world, rank);
}
tp_range tp_plan::kv_rows(int32_t rank) const {
  return even_split(static_cast<int64_t>(kv_heads_per_rank) * world * head_dim, world, rank);
}
tp_range tp_plan::ffn_rows(int32_t rank) const {
  return even_split(static_cast<int64_t>(ffn_per_rank) * world, world, rank);
}
tp_range tp_plan::vocab_rows(int32_t rank) const {
  const int64_t per = (static_cast<int64_t>(vocab) + world - 1) / world;
  return {std::min<int64_t>(per * rank, vocab), std::min<int64_t>(per * (rank + 1), vocab)};
}

tensor tp_slice_rows(const tensor& t, tp_range r) {
  if (t.shape.size() != 2 || r.begin < 0 || r.end > t.rows() || r.begin > r.end)
    throw model_error(fmt::format("{}: cannot take rows [{}, {}) of a tensor with {} rows", t.name, r.begin,
                                  r.end, t.rows()));
  tensor out = t;
  out.shape = {r.size(), t.cols()};
  out.data = r.size() > 0 ? t.row_ptr(r.begin) : t.data;
  // Scales follow the rows: one per row (int8, e.g. a bitsandbytes 8-bit checkpoint), one per
  // 64 elements of the flattened matrix (nf4, a bitsandbytes 4-bit checkpoint).
  if (t.type == dtype::int8) {
    out.scales = t.scales + r.begin;
  } else if (t.type == dtype::nf4) {
    if ((r.begin * t.cols()) % 64 != 0)
      throw model_error(fmt::format("{}: rows [{}, {}) do not start on a 64-element NF4 block", t.name, r.begin, r.end));
    out.scales = t.scales + r.begin * t.cols() / 64;
  } else if (t.scales != nullptr) {
    throw model_error(fmt::format("{}: {} weights cannot be split for tensor parallelism", t.name, dtype_name(t.type)));
  }
  return out;
}

tensor tp_slice_cols(const tensor& t, tp_range r, std::vector<std::unique_ptr<uint8_t[]>>& owned) {
  const int64_t block = block_elems(t.type);
  // int8 keeps one scale per row, which a column slice leaves as it is; NF4 / int4 scales are
  // per block of the row-major data and would need regrouping.
  if (t.scales != nullptr && t.type != dtype::int8)
    throw model_error(fmt::format("{}: {} weights cannot be split by columns for tensor parallelism", t.name,
                                  dtype_name(t.type)));
  if (t.shape.size() != 2 || r.begin < 0 || r.end > t.cols() || r.begin > r.end)
    throw model_error(fmt::format("{}: cannot take columns [{}, {}) of a tensor with {} columns", t.name,
                                  r.begin, r.end, t.cols()));
  if (r.begin % block != 0 || (r.end % block != 0 && r.end != t.cols()))
    throw model_error(fmt::format("{}: columns [{}, {}) are not on {}-element block boundaries of {}", t.name,
                                  r.begin, r.end, block, dtype_name(t.type)));
  const size_t skip = dtype_row_bytes(t.type, r.begin);
  const size_t take = dtype_row_bytes(t.type, r.size());
  auto buf = std::make_unique<uint8_t[]>(take * static_cast<size_t>(t.rows()));
  for (int64_t row = 0; row < t.rows(); ++row)
    std::memcpy(buf.get() + take * row, t.row_ptr(row) + skip, take);
  tensor out = t;
  out.shape = {t.rows(), r.size()};
  out.data = buf.get();
  owned.push_back(std::move(buf));
  return out;
}

tp_shard make_tp_shard(const loaded_model& model, const tp_plan& plan, int32_t rank) {
  if (rank < 0 || rank >= plan.world)
    throw model_error(fmt::format("tensor-parallel rank {} outside [0, {})", rank, plan.world));
  tp_shard s;
  s.rank = rank;
  s.config = model.config;
  s.config.n_heads = plan.heads_per_rank;
  s.config.n_kv_heads = plan.kv_heads_per_rank;
  s.config.intermediate_size = plan.ffn_per_rank;
  s.vocab = plan.vocab_rows(rank);
  s.config.vocab_size = static_cast<int32_t>(s.vocab.size());

  const auto& w = model.weights;
  s.weights.embed = w.embed;
  s.weights.final_norm = w.final_norm;
  s.weights.lm_head = tp_slice_rows(w.lm_head, s.vocab);
  const tp_range q = plan.q_rows(rank), kv = plan.kv_rows(rank), ffn = plan.ffn_rows(rank);
  for (const auto& l : w.layers) {
    layer_weights o;
    o.attn_norm = l.attn_norm;
    o.ffn_norm = l.ffn_norm;
    o.wq = tp_slice_rows(l.wq, q);
    o.wk = tp_slice_rows(l.wk, kv);
    o.wv = tp_slice_rows(l.wv, kv);
    o.wo = plan.world == 1 ? l.wo : tp_slice_cols(l.wo, q, s.owned);
    o.w_gate = tp_slice_rows(l.w_gate, ffn);
    o.w_up = tp_slice_rows(l.w_up, ffn);
    o.w_down = plan.world == 1 ? l.w_down : tp_slice_cols(l.w_down, ffn, s.owned);
    s.weights.layers.push_back(std::move(o));
  }
  return s;
}

thread_all_reduce::thread_all_reduce(int32_t world)
    : world_(world), barrier_(world), inputs_(static_cast<size_t>(world), nullptr) {
  if (world < 1) throw model_error(fmt::format("all-reduce world must be at least 1, got {}", world));
}

void thread_all_reduce::sum(int32_t rank, float* data, int64_t n) {
  if (world_ == 1) return;
  inputs_[rank] = data;
  if (rank == 0) result_.resize(static_cast<size_t>(n));
  barrier_.arrive_and_wait();  // every input is published and result_ is sized
  // Each rank adds its own slice of the elements, over the ranks in order 0..world-1.
  const int64_t per = (n + world_ - 1) / world_;
  const int64_t begin = std::min<int64_t>(per * rank, n), end = std::min<int64_t>(begin + per, n);
  for (int64_t i = begin; i < end; ++i) {
    float s = 0.0f;
    for (int32_t r = 0; r < world_; ++r) s += inputs_[r][i];
    result_[i] = s;
  }
  barrier_.arrive_and_wait();  // result_ is complete; nobody reads inputs any more
  std::memcpy(data, result_.data(), sizeof(float) * static_cast<size_t>(n));
  barrier_.arrive_and_wait();  // result_ may be resized by the next call
}

}  // namespace moat::engine

#include "memory.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace moat::planner {

namespace {
// Tokens one prefill chunk processes at once (chunked prefill, DESIGN.md section 5).
constexpr std::int64_t prefill_chunk = 512;
// The largest block the cpu runner accepts (kv_block_size).
constexpr std::int64_t max_kv_block_size = std::int64_t{1} << 20;
}  // namespace

memory_model::memory_model(model_spec model, weight_format weights, int group, kv_format kv,
                           kv_paging paging, allocator host)
    : model_(std::move(model)),
      weights_(weights),
      group_(group),
      kv_(kv),
      paging_(paging),
      host_(host) {
  if (paging_.block_size < 1 || paging_.block_size > max_kv_block_size)
    throw plan_error(fmt::format("--kv-block-size {}: must lie between 1 and {}", paging_.block_size, max_kv_block_size));
  if (paging_.n < 1) throw plan_error("--n must be at least 1");
  if (paging_.prompt < 0) throw plan_error("--prompt-tokens must not be negative");
  weight_bits(weights_, group_, model_.hidden);  // validates the group size now
}

double memory_model::matrix_bytes(std::int64_t rows, std::int64_t cols) const {
  return static_cast<double>(rows) * static_cast<double>(cols) * weight_bits(weights_, group_, cols) / 8.0;
}

double memory_model::layer_bytes() const {
  const auto& m = model_;
  const double attention = matrix_bytes(m.q_dim(), m.hidden) + 2 * matrix_bytes(m.kv_dim(), m.hidden) +
                           matrix_bytes(m.hidden, m.q_dim());
  const double expert = 2 * matrix_bytes(m.intermediate, m.hidden) + matrix_bytes(m.hidden, m.intermediate);
  const double small = static_cast<double>(m.router_params_per_layer() + m.norm_params_per_layer()) * unquantized_bytes(weights_);
  return attention + static_cast<double>(m.experts) * expert + small;
}

double memory_model::embedding_bytes() const {
  return static_cast<double>(model_.embedding_params()) * unquantized_bytes(weights_);
}

double memory_model::lm_head_bytes() const {
  return model_.tied_embeddings ? 0.0 : matrix_bytes(model_.vocab, model_.hidden);
}

double memory_model::weights_bytes() const {
  return static_cast<double>(model_.layers) * layer_bytes() + embedding_bytes() + lm_head_bytes() +
         static_cast<double>(model_.hidden) * unquantized_bytes(weights_);
}

double memory_model::experts_touched(std::int64_t batch) const {
  // Each token routes to k of E experts; with B tokens the expected number of distinct experts
  // is E * (1 - (1 - k/E)^B): 2 of 8 for one sequence, nearly all 8 by B = 16.
  const auto& m = model_;
  if (m.experts <= 1) return 1.0;
  const double p = static_cast<double>(m.experts_per_token) / static_cast<double>(m.experts);
  return static_cast<double>(m.experts) * (1.0 - std::pow(1.0 - p, static_cast<double>(batch)));
}

double memory_model::weights_read_per_step(std::int64_t batch) const {
  const auto& m = model_;
  const double expert = 2 * matrix_bytes(m.intermediate, m.hidden) + matrix_bytes(m.hidden, m.intermediate);
  const double per_layer = layer_bytes() - static_cast<double>(m.experts) * expert + experts_touched(batch) * expert;
  // A tied model reads the whole [V, H] table as its LM head; an untied one reads B rows of it.
  const double head = m.tied_embeddings ? embedding_bytes() : lm_head_bytes();
  const double rows = m.tied_embeddings ? 0.0 : static_cast<double>(batch * m.hidden) * unquantized_bytes(weights_);
  return static_cast<double>(m.layers) * per_layer + head + rows;
}

double memory_model::kv_bytes_per_token() const {
  const auto& m = model_;
  return 2.0 * static_cast<double>(m.layers * m.kv_heads * m.head_dim) * kv_element_bytes(kv_, m.head_dim);
}

double memory_model::kv_blocks(std::int64_t context, std::int64_t concurrency) const {
  // A request's n choices share floor(prompt / bs) full prompt blocks; each choice holds the
  // blocks from there to `context`: the copied partial prompt block and its own answer. The
  // last request may have fewer than n choices. In doubles: whole numbers, exact below 2^53,
  // and no overflow for absurd flags.
  const double bs = static_cast<double>(paging_.block_size);
  const double shared = std::floor(static_cast<double>(std::min(paging_.prompt, context)) / bs);
  const double own = std::ceil((static_cast<double>(context) - shared * bs) / bs);
  const double n = static_cast<double>(paging_.n);
  const double whole = std::floor(static_cast<double>(concurrency) / n);
  const double rest = static_cast<double>(concurrency) - whole * n;
  return whole * (shared + n * own) + (rest > 0 ? shared + rest * own : 0.0);
}

double memory_model::kv_positions(std::int64_t context, std::int64_t concurrency) const {
  return kv_blocks(context, concurrency) * static_cast<double>(paging_.block_size);
}

double memory_model::activation_bytes(const layout& l, std::int64_t context, std::int64_t concurrency) const {
  // Per token in flight: the fp32 residual [H] (4 B) and its fp16 normed copy [H] (2 B), then the
  // fp16 q, k, v, attention output and the three SwiGLU vectors, whose widths TP splits:
  //   6*H + 2*(2*q_dim + 2*kv_dim + 3*I_active)/tp bytes.
  // Tokens in flight: a prefill chunk or the decode batch, whichever is larger. The logits of the
  // decode batch are fp32 [B, V/tp]. Doubled, since a step keeps the input and output of a layer.
  const auto& m = model_;
  const double tp = l.tp;
  const double width = static_cast<double>(m.experts_per_token * m.intermediate);
  const double per_token = 6.0 * static_cast<double>(m.hidden) +
                           2.0 * (2.0 * static_cast<double>(m.q_dim() + m.kv_dim()) + 3.0 * width) / tp;
  const double tokens = static_cast<double>(std::max(std::min(prefill_chunk, context), concurrency));
  const double logits = static_cast<double>(concurrency) * static_cast<double>(m.vocab) * 4.0 / tp;
  return 2.0 * (tokens * per_token + logits);
}

per_device memory_model::on_device(const layout& l, const device& d, std::int64_t context,
                                   std::int64_t concurrency) const {
  const auto& m = model_;
  const std::int64_t stage_layers = (m.layers + l.pp - 1) / l.pp;  // the fullest stage
  // One stage holds both ends when pp = 1; otherwise the first holds the embedding and the
  // last the LM head and final norm: count the larger.
  const double head_and_final = lm_head_bytes() + static_cast<double>(m.hidden) * unquantized_bytes(weights_);
  const double ends = l.pp == 1 ? embedding_bytes() + head_and_final : std::max(embedding_bytes(), head_and_final);
  per_device out;
  out.weights = (static_cast<double>(stage_layers) * layer_bytes() + ends) / l.tp;
  out.kv = kv_bytes_per_token() / static_cast<double>(m.layers) * static_cast<double>(stage_layers) / l.tp *
           kv_positions(context, concurrency);
  out.activations = activation_bytes(l, context, concurrency);
  out.overhead = d.runtime_overhead_gib * 1024.0 * 1024.0 * 1024.0;
  out.allocator = d.is_cpu ? allocator_bytes(host_) : 0.0;
  out.capacity = d.memory_bytes();
  return out;
}

std::vector<int> memory_model::valid_tp(int limit) const {
  std::vector<int> out;
  for (int tp = 1; tp <= limit; ++tp)
    if (model_.heads % tp == 0 && model_.kv_heads % tp == 0) out.push_back(tp);
  return out;
}

void check_tensor_parallel(const model_spec& m, int tp, const std::string& flag) {
  if (tp < 1) throw plan_error(fmt::format("{} {}: must be at least 1", flag, tp));
  if (m.heads % tp != 0 || m.kv_heads % tp != 0) {
    std::vector<int> ok;
    for (int t = 1; t <= m.kv_heads; ++t)
      if (m.heads % t == 0 && m.kv_heads % t == 0) ok.push_back(t);
    throw plan_error(fmt::format(
        "{} {}: tensor parallelism must divide the {} attention heads and {} KV heads of {}; "
        "valid degrees are {}", flag, tp, m.heads, m.kv_heads, m.name, fmt::join(ok, ", ")));
  }
}

}  // namespace moat::planner

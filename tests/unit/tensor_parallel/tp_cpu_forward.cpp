#include "tp_cpu_forward.h"

#include <cmath>
#include <cstring>
#include <thread>

#include "cpu/kernels.h"

namespace moat::test {

namespace {

std::vector<float> row0_f32(const engine::tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.cols()));
  t.row_to_f32(0, out.data());
  return out;
}

void matvec(const engine::tensor& w, const float* x, float* y, std::vector<float>& scratch) {
  scratch.resize(static_cast<size_t>(w.cols()));
  cpu::matmul_rows(w, x, 1, y, w.rows(), 0, w.rows(), scratch.data());
}

}  // namespace

tp_cpu_model::tp_cpu_model(const engine::loaded_model& model, int32_t world, int32_t max_ctx)
    : model_(model),
      plan_(engine::tp_plan::make(model.config, world)),
      inv_freq_(engine::rope_inv_freq(model.config)),
      final_norm_(row0_f32(model.weights.final_norm)),
      all_reduce_(world) {
  for (const auto& l : model.weights.layers) {
    attn_norm_.push_back(row0_f32(l.attn_norm));
    ffn_norm_.push_back(row0_f32(l.ffn_norm));
  }
  for (int32_t r = 0; r < world; ++r) {
    rank_state s{engine::make_tp_shard(model, plan_, r), nullptr};
    s.kv = std::make_unique<cpu::kv_pool>(s.shard.config.n_layers, max_ctx, s.shard.config.kv_dim(), 1);
    ranks_.push_back(std::move(s));
  }
}

std::vector<float> tp_cpu_model::step(int32_t token, int32_t pos) {
  std::vector<float> logits(static_cast<size_t>(model_.config.vocab_size));
  std::vector<std::thread> threads;
  for (auto& r : ranks_)
    threads.emplace_back([&, rp = &r] { rank_forward(*rp, token, pos, logits.data() + rp->shard.vocab.begin); });
  for (auto& t : threads) t.join();
  return logits;
}

void tp_cpu_model::rank_forward(rank_state& r, int32_t token, int32_t pos, float* logits) {
  const auto& c = r.shard.config;  // local heads, kv heads and intermediate rows
  const auto& w = r.shard.weights;
  const int32_t dim = c.hidden_size, hd = c.head_dim;
  const int32_t group = c.n_heads / c.n_kv_heads;
  std::vector<float> x(dim), xb(dim), q(c.q_dim()), att_out(c.q_dim()), att(pos + 1), proj(dim);
  std::vector<float> h1(c.intermediate_size), h3(c.intermediate_size), scratch;
  cpu::kv_pool& kv = *r.kv;

  w.embed.row_to_f32(token, x.data());
  for (int32_t l = 0; l < c.n_layers; ++l) {
    const auto& lw = w.layers[l];
    cpu::rmsnorm(x.data(), attn_norm_[l].data(), c.rms_norm_eps, dim, xb.data());
    float* k_cur = kv.k(0, l, pos);
    float* v_cur = kv.v(0, l, pos);
    matvec(lw.wq, xb.data(), q.data(), scratch);
    matvec(lw.wk, xb.data(), k_cur, scratch);
    matvec(lw.wv, xb.data(), v_cur, scratch);
    for (int32_t h = 0; h < c.n_heads; ++h) cpu::rope(q.data() + h * hd, hd, pos, inv_freq_.data(), c.rope);
    for (int32_t h = 0; h < c.n_kv_heads; ++h) cpu::rope(k_cur + h * hd, hd, pos, inv_freq_.data(), c.rope);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    for (int32_t h = 0; h < c.n_heads; ++h) {
      const float* qh = q.data() + h * hd;
      const int32_t kvh = h / group;
      for (int32_t t = 0; t <= pos; ++t) {
        const float* kt = kv.k(0, l, t) + kvh * hd;
        float s = 0.0f;
        for (int32_t i = 0; i < hd; ++i) s += qh[i] * kt[i];
        att[t] = s * scale;
      }
      cpu::softmax(att.data(), pos + 1);
      float* out = att_out.data() + h * hd;
      std::memset(out, 0, sizeof(float) * hd);
      for (int32_t t = 0; t <= pos; ++t) {
        const float* vt = kv.v(0, l, t) + kvh * hd;
        for (int32_t i = 0; i < hd; ++i) out[i] += att[t] * vt[i];
      }
    }
    matvec(lw.wo, att_out.data(), proj.data(), scratch);  // partial: this rank's heads only
    all_reduce_.sum(r.shard.rank, proj.data(), dim);
    for (int32_t i = 0; i < dim; ++i) x[i] += proj[i];

    cpu::rmsnorm(x.data(), ffn_norm_[l].data(), c.rms_norm_eps, dim, xb.data());
    matvec(lw.w_gate, xb.data(), h1.data(), scratch);
    matvec(lw.w_up, xb.data(), h3.data(), scratch);
    cpu::swiglu(h1.data(), h3.data(), c.intermediate_size);
    matvec(lw.w_down, h1.data(), proj.data(), scratch);  // partial: this rank's rows only
    all_reduce_.sum(r.shard.rank, proj.data(), dim);
    for (int32_t i = 0; i < dim; ++i) x[i] += proj[i];
  }
  cpu::rmsnorm(x.data(), final_norm_.data(), c.rms_norm_eps, dim, xb.data());
  if (w.lm_head.rows() > 0) matvec(w.lm_head, xb.data(), logits, scratch);
}

}  // namespace moat::test

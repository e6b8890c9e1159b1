#include "cpu/reference_forward.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/kernels.h"

namespace moat::cpu {

namespace {

// y[o] = sum_i W[o][i] x[i], summed left to right like llama2.c's matmul.
void matvec_plain(const engine::tensor& w, const float* x, float* y) {
  const int64_t in = w.cols();
  std::vector<float> row(static_cast<size_t>(in));
  for (int64_t o = 0; o < w.rows(); ++o) {
    w.row_to_f32(o, row.data());
    float s = 0.0f;
    for (int64_t i = 0; i < in; ++i) s += row[i] * x[i];
    y[o] = s;
  }
}

// KV access of one sequence through its block table.
struct paged_access {
  paged_kv& kv;
  std::span<const int32_t> blocks;
  void write(int32_t l, int32_t p, const float* k, const float* v) {
    kv.write(blocks[p / kv.block_size()], l, p % kv.block_size(), k, v);
  }
  const float* k(int32_t l, int32_t p, int32_t kvh, int32_t, float* scratch) const {
    return kv.k_head(blocks[p / kv.block_size()], l, p % kv.block_size(), kvh, scratch);
  }
  const float* v(int32_t l, int32_t p, int32_t kvh, int32_t, float* scratch) const {
    return kv.v_head(blocks[p / kv.block_size()], l, p % kv.block_size(), kvh, scratch);
  }
};

// KV access of one contiguous kv_pool slot.
struct slot_access {
  kv_pool& kv;
  int32_t slot;
  void write(int32_t l, int32_t p, const float* k, const float* v) {
    std::memcpy(kv.k(slot, l, p), k, sizeof(float) * kv.kv_dim());
    std::memcpy(kv.v(slot, l, p), v, sizeof(float) * kv.kv_dim());
  }
  const float* k(int32_t l, int32_t p, int32_t kvh, int32_t hd, float*) const { return kv.k(slot, l, p) + kvh * hd; }
  const float* v(int32_t l, int32_t p, int32_t kvh, int32_t hd, float*) const { return kv.v(slot, l, p) + kvh * hd; }
};

template <class kv_access>
void forward_one(const model_view& mv, kv_access kv, int32_t token, int32_t pos, float* logits, float* hidden) {
  const auto& c = mv.cfg;
  const int32_t dim = c.hidden_size, hd = c.head_dim;
  const int32_t group = c.n_heads / c.n_kv_heads;  // query heads per KV head (GQA)
  std::vector<float> x(dim), xb(dim), q(c.q_dim()), att_out(c.q_dim()), att(pos + 1);
  std::vector<float> k_cur(c.kv_dim()), v_cur(c.kv_dim()), scratch(hd);
  std::vector<float> h1(c.intermediate_size), h3(c.intermediate_size), proj(dim);

  mv.w.embed.row_to_f32(token, x.data());
  for (int32_t l = 0; l < c.n_layers; ++l) {
    const auto& lw = mv.w.layers[l];
    rmsnorm(x.data(), mv.attn_norm[l].data(), c.rms_norm_eps, dim, xb.data());
    matvec_plain(lw.wq, xb.data(), q.data());
    matvec_plain(lw.wk, xb.data(), k_cur.data());
    matvec_plain(lw.wv, xb.data(), v_cur.data());
    for (int32_t h = 0; h < c.n_heads; ++h) rope(q.data() + h * hd, hd, pos, mv.inv_freq.data(), c.rope);
    for (int32_t h = 0; h < c.n_kv_heads; ++h) rope(k_cur.data() + h * hd, hd, pos, mv.inv_freq.data(), c.rope);
    kv.write(l, pos, k_cur.data(), v_cur.data());

    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    for (int32_t h = 0; h < c.n_heads; ++h) {
      const float* qh = q.data() + h * hd;
      const int32_t kvh = h / group;
      for (int32_t t = 0; t <= pos; ++t) {
        const float* kt = kv.k(l, t, kvh, hd, scratch.data());
        float s = 0.0f;
        for (int32_t i = 0; i < hd; ++i) s += qh[i] * kt[i];
        att[t] = s * scale;
      }
      softmax(att.data(), pos + 1);
      float* out = att_out.data() + h * hd;
      std::memset(out, 0, sizeof(float) * hd);
      for (int32_t t = 0; t <= pos; ++t) {
        const float* vt = kv.v(l, t, kvh, hd, scratch.data());
        for (int32_t i = 0; i < hd; ++i) out[i] += att[t] * vt[i];
      }
    }
    matvec_plain(lw.wo, att_out.data(), proj.data());
    for (int32_t i = 0; i < dim; ++i) x[i] += proj[i];

    rmsnorm(x.data(), mv.ffn_norm[l].data(), c.rms_norm_eps, dim, xb.data());
    matvec_plain(lw.w_gate, xb.data(), h1.data());
    matvec_plain(lw.w_up, xb.data(), h3.data());
    swiglu(h1.data(), h3.data(), c.intermediate_size);
    matvec_plain(lw.w_down, h1.data(), proj.data());
    for (int32_t i = 0; i < dim; ++i) x[i] += proj[i];
  }
  rmsnorm(x.data(), mv.final_norm.data(), c.rms_norm_eps, dim, xb.data());
  if (hidden != nullptr) std::memcpy(hidden, xb.data(), sizeof(float) * dim);
  if (logits != nullptr) matvec_plain(mv.w.lm_head, xb.data(), logits);
}

}  // namespace

void reference_forward(const model_view& mv, paged_kv& kv, std::span<const int32_t> blocks, int32_t token,
                       int32_t pos, float* logits, float* hidden) {
  forward_one(mv, paged_access{kv, blocks}, token, pos, logits, hidden);
}

void reference_forward(const model_view& mv, kv_pool& kv, int32_t slot, int32_t token, int32_t pos,
                       float* logits, float* hidden) {
  forward_one(mv, slot_access{kv, slot}, token, pos, logits, hidden);
}

}  // namespace moat::cpu

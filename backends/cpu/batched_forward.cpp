#include "cpu/batched_forward.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <optional>

#include "cpu/attention.h"
#include "cpu/float_matmul.h"
#include "cpu/kernels.h"
#include "cpu/phase_times.h"

namespace moat::cpu {

int64_t batched_forward::min_rows(const engine::tensor& w, int64_t n_rows) {
  return std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, w.cols() * n_rows));
}

void batched_forward::quantize_input(std::initializer_list<const engine::tensor*> ws,
                                     const float* x, int64_t n_rows) {
  std::optional<quant::weight_format> fmt;
  int64_t cols = 0;
  for (const engine::tensor* w : ws) {
    const auto qv = quantized_view(*w);
    if (qv && quant::activation_blocks(qv->format, qv->cols, 1) > 0) {
      fmt = qv->format;
      cols = w->cols();
      break;
    }
  }
  if (!fmt) return;
  phase_scope ps(phase::act_quant);
  const auto& k = quant::kernels();
  const size_t per_row = quant::activation_blocks(*fmt, static_cast<size_t>(cols), 1);
  xq_.resize(per_row * static_cast<size_t>(n_rows));
  // Rows are independent: a long prefill quantizes in parallel; decode batches (even 32 rows of
  // 2048, ~50 us) inline, where an extra fork/join per matmul input cost more than it saved.
  const int64_t min_chunk = std::max<int64_t>(1, (int64_t{1} << 17) / std::max<int64_t>(1, cols));
  pool_.parallel_for(
      n_rows,
      [&](int64_t b, int64_t e, int) {
        quant::prepare_activations(k, *fmt, x + b * cols, static_cast<size_t>(e - b),
                                   static_cast<size_t>(cols),
                                   xq_.data() + static_cast<size_t>(b) * per_row);
      },
      min_chunk);
}

void batched_forward::rows(const engine::tensor& w, const float* x, int64_t n_rows, float* y,
                           int64_t y_stride, int64_t b, int64_t e, int worker) {
  if (const auto qv = quantized_view(w)) {
    // Each output is one kernel dot product whatever the batch and the row split.
    quant::matmul_rows(quant::kernels(), *qv, x, xq_.data(), static_cast<size_t>(n_rows), y,
                       static_cast<size_t>(y_stride), static_cast<size_t>(b),
                       static_cast<size_t>(e));
    return;
  }
  // F32 and F16 matrices (the tied heads of HF and GGUF files): tiles of weight rows and
  // tokens, same bits as matmul_rows below.
  if (float_matmul_available()) {
    if (w.type == engine::dtype::f32) {
      f32_matmul_rows(static_cast<const float*>(w.data), w.cols(), x, n_rows, y, y_stride, b, e);
      return;
    }
    if (w.type == engine::dtype::f16) {
      f16_matmul_rows(static_cast<const uint16_t*>(w.data), w.cols(), x, n_rows, y, y_stride, b, e);
      return;
    }
  }
  // Each worker converts one weight row at a time into its scratch.
  matmul_rows(w, x, n_rows, y, y_stride, b, e, worker_scratch_[static_cast<size_t>(worker)].data());
}

void batched_forward::matmul(const engine::tensor& w, const float* x, int64_t n_rows, float* y) {
  quantize_input({&w}, x, n_rows);
  const int64_t out = w.rows();
  pool_.parallel_for(
      out, [&](int64_t b, int64_t e, int worker) { rows(w, x, n_rows, y, out, b, e, worker); },
      min_rows(w, n_rows));
}

void batched_forward::qkv(const engine::layer_weights& lw, int64_t T) {
  quantize_input({&lw.wq, &lw.wk, &lw.wv}, xb_.data(), T);
  phase_scope ps(phase::qkv);
  // One index space over the rows of Wq, then Wk, then Wv: a chunk may span two matrices.
  const std::array<const engine::tensor*, 3> ws = {&lw.wq, &lw.wk, &lw.wv};
  const std::array<float*, 3> ys = {q_.data(), k_.data(), v_.data()};
  const int64_t nq = lw.wq.rows(), nk = lw.wk.rows(), nv = lw.wv.rows();
  pool_.parallel_for(
      nq + nk + nv,
      [&](int64_t b, int64_t e, int worker) {
        int64_t base = 0;
        for (size_t m = 0; m < ws.size(); ++m) {
          const int64_t n = ws[m]->rows();
          const int64_t lo = std::max(b, base), hi = std::min(e, base + n);
          if (lo < hi) rows(*ws[m], xb_.data(), T, ys[m], n, lo - base, hi - base, worker);
          base += n;
        }
      },
      min_rows(lw.wq, T));
}

void batched_forward::gate_up(const engine::layer_weights& lw, int64_t T) {
  quantize_input({&lw.w_gate, &lw.w_up}, xb_.data(), T);
  phase_scope ps(phase::gate_up);
  const int64_t ff = lw.w_gate.rows();
  // Rows [b, e) of both matrices, then SiLU(gate) * up on those columns of every token while
  // they are in cache: no separate pass over [T][ff].
  pool_.parallel_for(
      ff,
      [&](int64_t b, int64_t e, int worker) {
        rows(lw.w_gate, xb_.data(), T, h1_.data(), ff, b, e, worker);
        rows(lw.w_up, xb_.data(), T, h3_.data(), ff, b, e, worker);
        for (int64_t t = 0; t < T; ++t)
          swiglu(h1_.data() + t * ff + b, h3_.data() + t * ff + b, e - b);
      },
      std::max<int64_t>(1, min_rows(lw.w_gate, T) / 2));
}

void batched_forward::project_add(const engine::tensor& w, const float* in, int64_t T) {
  quantize_input({&w}, in, T);
  const int64_t dim = w.rows();
  pool_.parallel_for(
      dim,
      [&](int64_t b, int64_t e, int worker) {
        rows(w, in, T, proj_.data(), dim, b, e, worker);
        for (int64_t t = 0; t < T; ++t) {
          float* x = x_.data() + t * dim;
          const float* p = proj_.data() + t * dim;
          for (int64_t i = b; i < e; ++i) x[i] += p[i];
        }
      },
      min_rows(w, T));
}

void batched_forward::rope_and_store(int32_t l, int64_t T) {
  const auto& c = mv_.cfg;
  const int64_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  const int32_t bs = kv_.block_size();
  // RoPE (one cos/sin table per token, shared by its heads), then K/V into the blocks: every
  // token's K/V of this layer is in the cache before any attention reads it, so a prefill chunk
  // attends causally within itself.
  cos_sin_.resize(static_cast<size_t>(c.head_dim));
  for (int64_t t = 0; t < T; ++t) {
    rope_angles(c.head_dim, tok_pos_[t], mv_.inv_freq.data(), cos_sin_.data());
    float* qt = q_.data() + t * q_dim;
    for (int32_t h = 0; h < c.n_heads; ++h)
      rope_rotate(qt + h * c.head_dim, c.head_dim, cos_sin_.data(), c.rope);
    float* kt = k_.data() + t * kv_dim;
    for (int32_t h = 0; h < c.n_kv_heads; ++h)
      rope_rotate(kt + h * c.head_dim, c.head_dim, cos_sin_.data(), c.rope);
    const int32_t p = tok_pos_[t];
    kv_.write(tables_[static_cast<size_t>(tok_item_[t])][static_cast<size_t>(p / bs)], l, p % bs,
              kt, v_.data() + t * kv_dim);
  }
}

void batched_forward::attention(int32_t layer, int64_t n_tokens) {
  const auto& c = mv_.cfg;
  const int32_t hd = c.head_dim, q_dim = c.q_dim();
  const int32_t group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // One unit of work is a (token, KV head) pair with its `group` query heads (GQA): each K and V
  // row is loaded once for all of them instead of once per query head. At 32 sequences the
  // step's K/V (32 x 40 positions x 2 x kv_dim floats a layer) does not fit in L2, so re-reading
  // it per query head cost as much memory traffic as the weights. Each score and each output
  // element is still computed in the same order as one head alone, so nothing changes a bit.
  // Work per unit grows with its position; small steps run inline.
  const int32_t max_pos = *std::max_element(tok_pos_.begin(), tok_pos_.begin() + n_tokens);
  const int64_t min_units = std::max<int64_t>(
      1, 4096 / std::max<int64_t>(1, static_cast<int64_t>(hd) * group * (max_pos + 1)));
  const bool int8_kv = kv_.type() == kv_dtype::int8;
  const int64_t units = n_tokens * c.n_kv_heads;
  pool_.parallel_for(
      units,
      [&](int64_t b, int64_t e, int worker) {
        float* att = worker_scratch_[worker].data();  // [group][max_ctx] scores
        for (int64_t i = b; i < e; ++i) {
          // Last unit first: a prefill's later tokens attend over more positions, and chunks
          // are claimed in order, so the heaviest go first and the light ones fill the end.
          const int64_t tk = units - 1 - i;
          const int64_t t = tk / c.n_kv_heads;
          const int32_t kvh = static_cast<int32_t>(tk % c.n_kv_heads);
          const int32_t pos = tok_pos_[t], bs = kv_.block_size(), n = pos + 1;
          const int32_t* table = tables_[static_cast<size_t>(tok_item_[t])].data();
          const float* q0 =
              q_.data() + t * q_dim + static_cast<int64_t>(kvh) * group * hd;  // [group][hd]
          float* out0 = att_out_.data() + t * q_dim + static_cast<int64_t>(kvh) * group * hd;
          std::memset(out0, 0, sizeof(float) * static_cast<size_t>(group) * hd);
          // Position p is offset p % bs of block table[p / bs]; each score is the same dot() as in
          // a contiguous cache, so the block size never changes a result.
          if (int8_kv) {
            // int8 KV read in place: q . (s k_q) = s (q . k_q), and a (s v_q) = (a s) v_q.
            float s = 0.0f;
            for (int32_t p = 0; p < n; ++p) {
              const int8_t* kq = kv_.k_int8(table[p / bs], layer, p % bs, kvh, &s);
              for (int32_t g = 0; g < group; ++g)
                att[g * max_ctx_ + p] = dot_i8(q0 + g * hd, kq, hd) * s * scale;
            }
            for (int32_t g = 0; g < group; ++g) softmax(att + g * max_ctx_, n);
            for (int32_t p = 0; p < n; ++p) {
              const int8_t* vq = kv_.v_int8(table[p / bs], layer, p % bs, kvh, &s);
              for (int32_t g = 0; g < group; ++g) {
                const float a = att[g * max_ctx_ + p] * s;
                axpy_i8(a, vq, out0 + g * hd, hd);
              }
            }
            continue;
          }
          attend_f32(kv_, table, layer, kvh, n, q0, group, scale, att, max_ctx_, out0);
        }
      },
      min_units);
}

void batched_forward::run(std::span<const engine::forward_item> items,
                          std::span<const std::span<const int32_t>> tables, float* logits,
                          float* hidden) {
  const auto& c = mv_.cfg;
  const int64_t dim = c.hidden_size, q_dim = c.q_dim(), kv_dim = c.kv_dim(),
                ff = c.intermediate_size;

  tok_item_.clear();
  tok_pos_.clear();
  tok_id_.clear();
  tables_.assign(tables.begin(), tables.end());
  std::vector<int64_t> logit_rows;  // token indices whose logits are wanted, in output order
  for (size_t item = 0; item < items.size(); ++item) {
    const auto& it = items[item];
    const int64_t first = static_cast<int64_t>(tok_id_.size());
    for (size_t i = 0; i < it.tokens.size(); ++i) {
      tok_item_.push_back(static_cast<int32_t>(item));
      tok_pos_.push_back(it.start_pos + static_cast<int32_t>(i));
      tok_id_.push_back(it.tokens[i]);
      if (it.all_logits) logit_rows.push_back(first + static_cast<int64_t>(i));
    }
    if (!it.all_logits) logit_rows.push_back(static_cast<int64_t>(tok_id_.size()) - 1);
  }
  const int64_t T = static_cast<int64_t>(tok_id_.size());
  auto grow = [](std::vector<float>& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  };
  grow(x_, T * dim);
  grow(xb_, T * dim);
  grow(q_, T * q_dim);
  grow(k_, T * kv_dim);
  grow(v_, T * kv_dim);
  grow(att_out_, T * q_dim);
  grow(h1_, T * ff);
  grow(h3_, T * ff);
  grow(proj_, T * dim);
  const int64_t group = c.n_heads / c.n_kv_heads;
  const int64_t scratch = std::max<int64_t>({dim, q_dim, ff, group * max_ctx_ + c.head_dim});
  worker_scratch_.resize(static_cast<size_t>(pool_.size()));
  for (auto& s : worker_scratch_) grow(s, scratch);

  {
    phase_scope ps(phase::embed);
    for (int64_t t = 0; t < T; ++t) mv_.w.embed.row_to_f32(tok_id_[t], x_.data() + t * dim);
  }

  // x_ -> xb_, row by row, before attention and before the FFN.
  const auto norm_rows = [&](const float* weight) {
    phase_scope ps(phase::norm);
    rmsnorm_rows(x_.data(), weight, c.rms_norm_eps, dim, T, xb_.data());
  };
  for (int32_t l = 0; l < c.n_layers; ++l) {
    const auto& lw = mv_.w.layers[l];
    norm_rows(mv_.attn_norm[l].data());
    qkv(lw, T);
    {
      phase_scope ps(phase::rope_kv);
      rope_and_store(l, T);
    }
    {
      phase_scope ps(phase::attention);
      attention(l, T);
    }
    {
      phase_scope ps(phase::wo);
      project_add(lw.wo, att_out_.data(), T);
    }
    norm_rows(mv_.ffn_norm[l].data());
    gate_up(lw, T);
    {
      phase_scope ps(phase::down);
      project_add(lw.w_down, h1_.data(), T);
    }
  }

  if (hidden != nullptr) {
    for (int64_t t = 0; t < T; ++t)
      rmsnorm(x_.data() + t * dim, mv_.final_norm.data(), c.rms_norm_eps, dim, hidden + t * dim);
  }
  if (logits != nullptr) {
    const int64_t R = static_cast<int64_t>(logit_rows.size());
    grow(final_rows_, R * dim);
    {
      phase_scope ps(phase::norm);
      for (int64_t r = 0; r < R; ++r) {
        rmsnorm(x_.data() + logit_rows[r] * dim, mv_.final_norm.data(), c.rms_norm_eps, dim,
                final_rows_.data() + r * dim);
      }
    }
    phase_scope ps(phase::lm_head);
    matmul(mv_.w.lm_head, final_rows_.data(), R, logits);
  }
}

}  // namespace moat::cpu

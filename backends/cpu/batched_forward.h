// The batched forward pass: every token of every running sequence goes through each weight
// matrix together (one read of the weights per step, not per sequence), with the rows of each
// matmul, and the (token, head) pairs of attention, split over a thread pool.
// Five parallel regions per layer (each a fork/join of the pool): q/k/v together, attention, o
// (+ residual), gate/up together (+ SiLU-mul), down (+ residual); activations are quantized once
// per input, shared by the matrices that read it. Kernels: quantized weights go to
// moat_cpu_quant; F32 / F16 weights (the tied heads of small models) to float_matmul.h's tiles;
// attention over an f32 cache to attend_f32 (attention.h), one call per (token, KV head). Each
// gives the bits of the plain per-element path (kernels.h, dot_lanes.h).
//
//   batched_forward fwd(mv, kv, pool, max_ctx);
//   fwd.run(items, tables, logits_or_null, hidden_or_null);   // tables[i]: item i's block table
//
// Each output element is computed the same way whatever else is in the batch (see kernels.h),
// so batching never changes a sequence's logits.
#pragma once

#include <initializer_list>
#include <span>
#include <vector>

#include "cpu/model_view.h"
#include "cpu/paged_kv.h"
#include "cpu/thread_pool.h"
#include "engine/model_runner.h"

namespace moat::cpu {

class batched_forward {
 public:
  batched_forward(const model_view& mv, paged_kv& kv, thread_pool& pool, int32_t max_ctx)
      : mv_(mv), kv_(kv), pool_(pool), max_ctx_(max_ctx) {}

  // tables: one block table per item (the item's own, or its legacy slot's), in item order.
  // logits: [model_runner::logits_rows(items)][vocab] or null.
  // hidden: [total tokens][hidden] after the final norm, or null.
  // Items and tables are already validated by the runner.
  void run(std::span<const engine::forward_item> items,
           std::span<const std::span<const int32_t>> tables, float* logits, float* hidden);

 private:
  // Y[T][w.rows()] = X[T][w.cols()] W^T, rows of W split over the pool.
  void matmul(const engine::tensor& w, const float* x, int64_t n_rows, float* y);
  // Quantizes X [T][cols] into xq_ (Q8_0) when any of `ws` reads quantized activations; once
  // for all of them (every non-nf4 format reads the same Q8_0 blocks).
  void quantize_input(std::initializer_list<const engine::tensor*> ws, const float* x,
                      int64_t n_rows);
  // Rows [b, e) of Y[T][y_stride] = X W^T for one matrix (xq_ already prepared for x).
  void rows(const engine::tensor& w, const float* x, int64_t n_rows, float* y, int64_t y_stride,
            int64_t b, int64_t e, int worker);
  // Fewest output rows per chunk: a chunk gets at least ~32k multiply-adds.
  static int64_t min_rows(const engine::tensor& w, int64_t n_rows);
  // q_, k_, v_ = xb_ Wq^T, Wk^T, Wv^T in one region.
  void qkv(const engine::layer_weights& lw, int64_t n_tokens);
  // h1_ = silu(xb_ Wgate^T) * (xb_ Wup^T) in one region.
  void gate_up(const engine::layer_weights& lw, int64_t n_tokens);
  // x_ += in W^T (the o and down projections with their residual add), in one region.
  void project_add(const engine::tensor& w, const float* in, int64_t n_tokens);
  void rope_and_store(int32_t layer, int64_t n_tokens);
  void attention(int32_t layer, int64_t n_tokens);

  const model_view& mv_;
  paged_kv& kv_;
  thread_pool& pool_;
  const int32_t max_ctx_;

  // Per-step scratch, grown as needed and reused across steps. T = tokens in the step.
  std::vector<int32_t> tok_item_, tok_pos_, tok_id_;  // [T]
  std::vector<std::span<const int32_t>> tables_;      // [items]: block tables
  std::vector<float> x_, xb_;                         // [T][hidden]
  std::vector<float> q_, k_, v_, att_out_;            // [T][q_dim], [T][kv_dim] x2, [T][q_dim]
  std::vector<float> h1_, h3_;                        // [T][intermediate]
  std::vector<float> proj_;                           // [T][hidden]
  std::vector<float> cos_sin_;                        // [head_dim]: one position's RoPE cos/sin
  std::vector<float> final_rows_;                     // [rows needing logits][hidden]
  std::vector<std::vector<float>>
      worker_scratch_;                 // per worker: max(in_features, group * max_ctx + head_dim)
  std::vector<quant::block_q8_0> xq_;  // quantized activations of one matmul
};

}  // namespace moat::cpu

// paged_kv: the CPU runner's KV storage, a pool of fixed-size blocks addressed through block
// tables (engine/model_runner.h). Internal to backends/cpu.
//
//   paged_kv kv(cfg.n_layers, cfg.n_kv_heads, cfg.head_dim, /*block_size=*/16, n_blocks, kv_dtype::f32);
//   kv.write(block, layer, off, k_row, v_row);           // kv_dim floats each
//   const float* k = kv.k_head(block, layer, off, kvh, scratch);   // head_dim floats
//
// Layout, block-major so that one block (every layer, K and V) is one contiguous run:
//   f32:  data [n_blocks][n_layers][2 (K, V)][block_size][kv_dim] floats
//   int8: data [n_blocks][n_layers][2][block_size][kv_dim] int8, and
//         scales [n_blocks][n_layers][2][block_size][n_kv_heads] floats
// int8 KV: each (token, head) row of head_dim values is stored as round(x / s) with
// s = max|x| / 127 (symmetric, per token and head), read back as q * s. The error per element
// is at most s / 2 = max|x| / 254 of its row (about 0.4% of the row's largest value).
// The memory is allocated uninitialized: pages are touched only as positions are written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

namespace moat::cpu {

enum class kv_dtype { f32, int8 };

// "f32" / "int8" -> the dtype; nullopt otherwise.
std::optional<kv_dtype> parse_kv_dtype(std::string_view name);

class paged_kv {
 public:
  paged_kv(int32_t n_layers, int32_t n_kv_heads, int32_t head_dim, int32_t block_size, int32_t n_blocks,
           kv_dtype type);

  // Bytes one token occupies across all layers, K and V.
  static size_t bytes_per_token(int32_t n_layers, int32_t n_kv_heads, int32_t head_dim, kv_dtype type);

  // Stores one token's K and V rows ([kv_dim] floats each) at (block, layer, off).
  void write(int32_t block, int32_t layer, int32_t off, const float* k, const float* v);

  // One head's K (or V) row at (block, layer, off): a pointer into the pool (f32), or the row
  // dequantized into `scratch` (head_dim floats, caller-owned) and `scratch` returned (int8).
  const float* k_head(int32_t block, int32_t layer, int32_t off, int32_t kvh, float* scratch) const {
    return head(block, layer, 0, off, kvh, scratch);
  }
  const float* v_head(int32_t block, int32_t layer, int32_t off, int32_t kvh, float* scratch) const {
    return head(block, layer, 1, off, kvh, scratch);
  }

  // int8 only: one head's quantized K (or V) row at (block, layer, off), head_dim values, and
  // its scale in *scale (the value is q * scale). Lets attention skip the dequantized copy.
  const int8_t* k_int8(int32_t block, int32_t layer, int32_t off, int32_t kvh, float* scale) const {
    return head_int8(row(block, layer, 0, off), kvh, scale);
  }
  const int8_t* v_int8(int32_t block, int32_t layer, int32_t off, int32_t kvh, float* scale) const {
    return head_int8(row(block, layer, 1, off), kvh, scale);
  }

  // f32 only: one head's K (which = 0) or V (1) row at offset 0 of (block, layer); the row at
  // offset o is o * kv_dim() floats further. Lets attention walk a block without a call per
  // position.
  const float* f32_head(int32_t block, int32_t layer, int which, int32_t kvh) const {
    return f32_.get() + row(block, layer, which, 0) * static_cast<size_t>(kv_dim()) +
           static_cast<size_t>(kvh) * static_cast<size_t>(head_dim_);
  }

  // Copies offsets [0, n_tokens) of every layer from block `from` to block `to`.
  void copy(int32_t from, int32_t to, int32_t n_tokens);
  // Copies the whole block `from` of `src` into block `to` of `dst` (same shape and dtype; one
  // contiguous run each): the CPU runner's swap to and from its host store.
  static void copy_block(const paged_kv& src, int32_t from, paged_kv& dst, int32_t to);

  int32_t n_blocks() const { return n_blocks_; }
  int32_t block_size() const { return block_size_; }
  int32_t n_layers() const { return n_layers_; }
  int32_t kv_dim() const { return n_kv_heads_ * head_dim_; }
  int32_t head_dim() const { return head_dim_; }
  kv_dtype type() const { return type_; }

 private:
  // Index of row (block, layer, which, off) in units of rows: [..][n_layers][2][block_size].
  size_t row(int32_t block, int32_t layer, int which, int32_t off) const {
    return ((static_cast<size_t>(block) * n_layers_ + layer) * 2 + which) * block_size_ + off;
  }
  const float* head(int32_t block, int32_t layer, int which, int32_t off, int32_t kvh, float* scratch) const;
  const int8_t* head_int8(size_t r, int32_t kvh, float* scale) const {
    *scale = scales_[r * static_cast<size_t>(n_kv_heads_) + static_cast<size_t>(kvh)];
    return q_.get() + r * static_cast<size_t>(kv_dim()) + static_cast<size_t>(kvh) * static_cast<size_t>(head_dim_);
  }
  void store(size_t r, const float* x);

  int32_t n_layers_, n_kv_heads_, head_dim_, block_size_, n_blocks_;
  kv_dtype type_;
  std::unique_ptr<float[]> f32_;        // f32 rows
  std::unique_ptr<int8_t[]> q_;         // int8 rows
  std::unique_ptr<float[]> scales_;     // int8: one per (row, head)
};

}  // namespace moat::cpu

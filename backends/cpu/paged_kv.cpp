#include "cpu/paged_kv.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace moat::cpu {

std::optional<kv_dtype> parse_kv_dtype(std::string_view name) {
  if (name == "f32") return kv_dtype::f32;
  if (name == "int8") return kv_dtype::int8;
  return std::nullopt;
}

size_t paged_kv::bytes_per_token(int32_t n_layers, int32_t n_kv_heads, int32_t head_dim, kv_dtype type) {
  const size_t kv_dim = static_cast<size_t>(n_kv_heads) * head_dim;
  const size_t per_row = type == kv_dtype::f32 ? kv_dim * sizeof(float)
                                               : kv_dim + static_cast<size_t>(n_kv_heads) * sizeof(float);
  return 2 * static_cast<size_t>(n_layers) * per_row;
}

paged_kv::paged_kv(int32_t n_layers, int32_t n_kv_heads, int32_t head_dim, int32_t block_size, int32_t n_blocks,
                   kv_dtype type)
    : n_layers_(n_layers),
      n_kv_heads_(n_kv_heads),
      head_dim_(head_dim),
      block_size_(block_size),
      n_blocks_(n_blocks),
      type_(type) {
  const size_t rows = static_cast<size_t>(n_blocks) * n_layers * 2 * block_size;
  if (type == kv_dtype::f32) {
    f32_.reset(new float[rows * kv_dim()]);
  } else {
    q_.reset(new int8_t[rows * kv_dim()]);
    scales_.reset(new float[rows * n_kv_heads]);
  }
}

void paged_kv::store(size_t r, const float* x) {
  const size_t dim = static_cast<size_t>(kv_dim());
  if (type_ == kv_dtype::f32) {
    std::memcpy(f32_.get() + r * dim, x, sizeof(float) * dim);
    return;
  }
  int8_t* q = q_.get() + r * dim;
  float* s = scales_.get() + r * n_kv_heads_;
  for (int32_t h = 0; h < n_kv_heads_; ++h) {
    const float* xh = x + static_cast<size_t>(h) * head_dim_;
    float amax = 0.0f;
    for (int32_t i = 0; i < head_dim_; ++i) amax = std::max(amax, std::fabs(xh[i]));
    const float scale = amax / 127.0f;
    const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
    s[h] = scale;
    int8_t* qh = q + static_cast<size_t>(h) * head_dim_;
    for (int32_t i = 0; i < head_dim_; ++i) {
      const float v = std::nearbyint(xh[i] * inv);
      qh[i] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
    }
  }
}

void paged_kv::write(int32_t block, int32_t layer, int32_t off, const float* k, const float* v) {
  store(row(block, layer, 0, off), k);
  store(row(block, layer, 1, off), v);
}

const float* paged_kv::head(int32_t block, int32_t layer, int which, int32_t off, int32_t kvh, float* scratch) const {
  const size_t r = row(block, layer, which, off);
  const size_t dim = static_cast<size_t>(kv_dim());
  if (type_ == kv_dtype::f32) return f32_.get() + r * dim + static_cast<size_t>(kvh) * head_dim_;
  const int8_t* q = q_.get() + r * dim + static_cast<size_t>(kvh) * head_dim_;
  const float s = scales_[r * n_kv_heads_ + kvh];
  for (int32_t i = 0; i < head_dim_; ++i) scratch[i] = static_cast<float>(q[i]) * s;
  return scratch;
}

void paged_kv::copy(int32_t from, int32_t to, int32_t n_tokens) {
  const size_t dim = static_cast<size_t>(kv_dim());
  for (int32_t l = 0; l < n_layers_; ++l) {
    for (int which = 0; which < 2; ++which) {
      const size_t src = row(from, l, which, 0), dst = row(to, l, which, 0), n = static_cast<size_t>(n_tokens);
      if (type_ == kv_dtype::f32) {
        std::memmove(f32_.get() + dst * dim, f32_.get() + src * dim, sizeof(float) * n * dim);
      } else {
        std::memmove(q_.get() + dst * dim, q_.get() + src * dim, n * dim);
        std::memmove(scales_.get() + dst * n_kv_heads_, scales_.get() + src * n_kv_heads_,
                     sizeof(float) * n * n_kv_heads_);
      }
    }
  }
}

void paged_kv::copy_block(const paged_kv& src, int32_t from, paged_kv& dst, int32_t to) {
  const size_t rows = static_cast<size_t>(src.n_layers_) * 2 * static_cast<size_t>(src.block_size_);
  const size_t dim = static_cast<size_t>(src.kv_dim());
  const size_t s = src.row(from, 0, 0, 0), d = dst.row(to, 0, 0, 0);
  if (src.type_ == kv_dtype::f32) {
    std::memcpy(dst.f32_.get() + d * dim, src.f32_.get() + s * dim, sizeof(float) * rows * dim);
  } else {
    std::memcpy(dst.q_.get() + d * dim, src.q_.get() + s * dim, rows * dim);
    std::memcpy(dst.scales_.get() + d * src.n_kv_heads_, src.scales_.get() + s * src.n_kv_heads_,
                sizeof(float) * rows * static_cast<size_t>(src.n_kv_heads_));
  }
}

}  // namespace moat::cpu

#include "kernels/reference/reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

namespace moat::kernels::reference {

namespace {

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      exp = 127 - 15 + 1;
      while ((man & 0x400u) == 0) {
        man <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

float weight_at(const gemv_weights& w, int64_t r, int64_t c) {
  switch (w.format) {
    case weight_format::f16:
      return half_to_float(static_cast<const uint16_t*>(w.data)[r * w.cols + c]);
    case weight_format::bf16:
      return bf16_to_float(static_cast<const uint16_t*>(w.data)[r * w.cols + c]);
    case weight_format::f32:
      return static_cast<const float*>(w.data)[r * w.cols + c];
    case weight_format::int8:
      return static_cast<const int8_t*>(w.data)[r * w.cols + c] *
             (w.int8_group == 0 ? w.scales[r]
                                : w.scales[r * (w.cols / w.int8_group) + c / w.int8_group]);
    case weight_format::int4: {
      const auto* row = static_cast<const uint8_t*>(w.data) + r * int4_row_bytes(w.cols, w.group);
      const uint8_t byte = row[(c / 32) * 16 + (c % 16)];
      const int nib = (c % 32) < 16 ? (byte & 0x0f) : (byte >> 4);
      return w.scales[r * int4_row_groups(w.cols, w.group) + c / w.group] * static_cast<float>(nib - 8);
    }
    case weight_format::nf4: {
      const int64_t f = r * w.cols + c;
      const uint8_t byte = static_cast<const uint8_t*>(w.data)[f / 2];
      const int code = (f & 1) ? (byte & 0x0f) : (byte >> 4);
      const int64_t b = f / w.blocksize;
      const float absmax = w.absmax_codes == nullptr
                               ? w.absmax[b]
                               : w.absmax_map[w.absmax_codes[b]] * w.absmax2[b / w.nested_blocksize] + w.absmax_offset;
      return k_nf4_levels[code] * absmax;
    }
  }
  return 0.0f;
}

void gemv(const gemv_weights& w, const float* x, int32_t n_tokens, float* y) {
  for (int32_t t = 0; t < n_tokens; ++t)
    for (int64_t o = 0; o < w.rows; ++o) {
      double s = 0.0;  // double: the yardstick should not carry its own rounding
      for (int64_t i = 0; i < w.cols; ++i) s += static_cast<double>(weight_at(w, o, i)) * x[t * w.cols + i];
      y[t * w.rows + o] = static_cast<float>(s);
    }
}

void rmsnorm(const float* x, const float* weight, float eps, int32_t n_tokens, int32_t n, float* out) {
  for (int32_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + static_cast<int64_t>(t) * n;
    double ss = 0.0;
    for (int32_t i = 0; i < n; ++i) ss += static_cast<double>(xt[i]) * xt[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(ss / n) + eps);
    for (int32_t i = 0; i < n; ++i) out[static_cast<int64_t>(t) * n + i] = weight[i] * (xt[i] * inv);
  }
}

void rope(float* x, const int32_t* positions, const float* inv_freq, int32_t n_tokens, int32_t n_heads,
          int32_t head_dim, rope_pairs pairs) {
  const int32_t half = head_dim / 2;
  for (int32_t t = 0; t < n_tokens; ++t)
    for (int32_t h = 0; h < n_heads; ++h) {
      float* v = x + (static_cast<int64_t>(t) * n_heads + h) * head_dim;
      for (int32_t i = 0; i < half; ++i) {
        const float angle = static_cast<float>(positions[t]) * inv_freq[i];
        const float c = std::cos(angle), s = std::sin(angle);
        const int32_t a = pairs == rope_pairs::rotate_half ? i : 2 * i;
        const int32_t b = pairs == rope_pairs::rotate_half ? i + half : 2 * i + 1;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * c - x1 * s;
        v[b] = x0 * s + x1 * c;
      }
    }
}

void swiglu(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void kv_write(const float* k, const float* v, const int32_t* rows, int32_t n, int32_t kv_dim, float* k_pool,
              float* v_pool) {
  for (int32_t i = 0; i < n; ++i)
    for (int32_t j = 0; j < kv_dim; ++j) {
      k_pool[static_cast<int64_t>(rows[i]) * kv_dim + j] = k[static_cast<int64_t>(i) * kv_dim + j];
      v_pool[static_cast<int64_t>(rows[i]) * kv_dim + j] = v[static_cast<int64_t>(i) * kv_dim + j];
    }
}

void paged_attention(const paged_attention_args& a) {
  const int32_t group = a.n_heads / a.n_kv_heads;
  for (int32_t s = 0; s < a.n_seq; ++s) {
    const int32_t len = a.seq_lens[s];
    std::vector<double> att(static_cast<size_t>(std::max(len, 1)));
    for (int32_t h = 0; h < a.n_heads; ++h) {
      const float* q = a.q + (static_cast<int64_t>(s) * a.n_heads + h) * a.head_dim;
      float* out = a.out + (static_cast<int64_t>(s) * a.n_heads + h) * a.head_dim;
      std::fill(out, out + a.head_dim, 0.0f);
      if (len == 0) continue;
      auto row = [&](const float* pool, int32_t t) {
        const int32_t block = a.block_tables[static_cast<int64_t>(s) * a.max_blocks + t / a.block_size];
        return pool + ((static_cast<int64_t>(block) * a.block_size + t % a.block_size) * a.n_kv_heads + h / group) *
                          a.head_dim;
      };
      double m = -std::numeric_limits<double>::infinity(), sum = 0.0;
      for (int32_t t = 0; t < len; ++t) {
        const float* k = row(a.k_pool, t);
        double d = 0.0;
        for (int32_t i = 0; i < a.head_dim; ++i) d += static_cast<double>(q[i]) * k[i];
        att[t] = d * a.scale;
        m = std::max(m, att[t]);
      }
      for (int32_t t = 0; t < len; ++t) sum += (att[t] = std::exp(att[t] - m));
      for (int32_t i = 0; i < a.head_dim; ++i) {
        double o = 0.0;
        for (int32_t t = 0; t < len; ++t) o += att[t] * row(a.v_pool, t)[i];
        out[i] = static_cast<float>(o / sum);
      }
    }
  }
}

void sample(const float* logits, int32_t n_rows, int32_t vocab, const sampling_params& p, const float* u,
            int32_t* out) {
  std::vector<float> e(static_cast<size_t>(vocab)), sorted;
  for (int32_t r = 0; r < n_rows; ++r) {
    const float* l = logits + static_cast<int64_t>(r) * vocab;
    const int32_t best = static_cast<int32_t>(std::max_element(l, l + vocab) - l);  // first maximum
    if (p.temperature < k_greedy_temperature) {
      out[r] = best;
      continue;
    }
    for (int32_t i = 0; i < vocab; ++i) e[i] = std::exp((l[i] - l[best]) / p.temperature);
    float threshold = 0.0f;
    if (p.top_k > 0 && p.top_k < vocab) {
      sorted = e;
      std::nth_element(sorted.begin(), sorted.begin() + (p.top_k - 1), sorted.end(), std::greater<float>());
      threshold = sorted[p.top_k - 1];
    }
    threshold = std::max(threshold, p.min_p);  // e of the most likely token is exactly 1
    if (p.top_p < 1.0f) {
      double kept = 0.0;
      sorted.clear();
      for (int32_t i = 0; i < vocab; ++i)
        if (e[i] >= threshold) {
          kept += e[i];
          sorted.push_back(e[i]);
        }
      std::sort(sorted.begin(), sorted.end(), std::greater<float>());
      double cum = 0.0;
      for (float v : sorted) {
        cum += v;
        if (cum >= p.top_p * kept) {
          threshold = v;
          break;
        }
      }
    }
    double total = 0.0;
    for (int32_t i = 0; i < vocab; ++i)
      if (e[i] >= threshold) total += e[i];
    const double target = u[r] * total;
    double run = 0.0;
    int32_t pick = -1;
    for (int32_t i = 0; i < vocab; ++i) {
      if (e[i] < threshold) continue;
      run += e[i];
      pick = i;
      if (run > target) break;
    }
    out[r] = pick < 0 ? best : pick;
  }
}

}  // namespace moat::kernels::reference

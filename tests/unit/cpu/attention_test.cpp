// attend_f32 (one function per (token, KV head) unit, walking the blocks) against the
// per-position path it replaced: k_head/v_head per position, dot(), softmax(), axpy(). Same
// bits, for block sizes that split the positions unevenly, GQA groups of 1, 2 and 4, and head
// sizes that are and are not multiples of 8 (32 x group 4: more V slices than one pass holds).
#include "cpu/attention.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/paged_kv.h"

namespace moat::cpu {
namespace {

TEST(attention, attend_f32_same_bits_as_per_position_path) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const int32_t hd : {4, 8, 16, 20, 32}) {
    for (const int32_t bs : {1, 3, 16}) {
      for (const int32_t group : {1, 2, 4}) {
        const int32_t n_kv_heads = 3, layers = 2, n_blocks = 12;
        paged_kv kv(layers, n_kv_heads, hd, bs, n_blocks, kv_dtype::f32);
        // A table that is not in block order, as after frees and prefix sharing.
        std::vector<int32_t> table(static_cast<size_t>(n_blocks));
        for (int32_t b = 0; b < n_blocks; ++b)
          table[static_cast<size_t>(b)] = (b * 5 + 3) % n_blocks;
        const int32_t n = std::min(n_blocks * bs, 23);
        std::vector<float> k(static_cast<size_t>(n_kv_heads * hd)), v(k.size());
        for (int32_t l = 0; l < layers; ++l) {
          for (int32_t p = 0; p < n; ++p) {
            for (float& x : k) x = nd(rng);
            for (float& x : v) x = nd(rng);
            kv.write(table[static_cast<size_t>(p / bs)], l, p % bs, k.data(), v.data());
          }
        }
        std::vector<float> q(static_cast<size_t>(group * hd));
        for (float& x : q) x = nd(rng);
        const float scale = 0.25f;
        const int64_t stride = n + 5;
        for (const int32_t layer : {0, 1}) {
          for (const int32_t kvh : {0, 2}) {
            std::vector<float> att(static_cast<size_t>(group * stride)), want(q.size(), 7.0f);
            std::vector<float> got(q.size(), 7.0f);
            std::vector<float> scratch(static_cast<size_t>(hd));
            for (int32_t p = 0; p < n; ++p) {
              const float* kp =
                  kv.k_head(table[static_cast<size_t>(p / bs)], layer, p % bs, kvh, scratch.data());
              for (int32_t g = 0; g < group; ++g)
                att[static_cast<size_t>(g * stride + p)] = dot(q.data() + g * hd, kp, hd) * scale;
            }
            for (int32_t g = 0; g < group; ++g) softmax(att.data() + g * stride, n);
            std::fill(want.begin(), want.end(), 0.0f);
            for (int32_t p = 0; p < n; ++p) {
              const float* vp =
                  kv.v_head(table[static_cast<size_t>(p / bs)], layer, p % bs, kvh, scratch.data());
              for (int32_t g = 0; g < group; ++g)
                axpy(att[static_cast<size_t>(g * stride + p)], vp, want.data() + g * hd, hd);
            }
            std::vector<float> att2(att.size());
            attend_f32(kv, table.data(), layer, kvh, n, q.data(), group, scale, att2.data(), stride,
                       got.data());
            for (size_t i = 0; i < want.size(); ++i) {
              ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i]))
                  << "hd " << hd << " bs " << bs << " group " << group << " layer " << layer
                  << " kvh " << kvh << " element " << i << ": " << got[i] << " vs " << want[i];
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace moat::cpu

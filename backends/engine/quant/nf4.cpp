#include "engine/quant/nf4.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace moat::engine::quant {

const std::array<float, 16> nf4_code = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

namespace {

// Decision boundaries between neighbouring codes, computed in float as bitsandbytes does;
// a value exactly on a boundary takes the lower code (torch.bucketize, right=False).
std::array<float, 15> nf4_midpoints() {
  std::array<float, 15> m{};
  for (size_t i = 0; i < 15; ++i) m[i] = (nf4_code[i] + nf4_code[i + 1]) / 2.0f;
  return m;
}

// The number of boundaries below `scaled`: the boundaries are sorted, so that is the first
// code whose upper boundary is not below it. Counting without a branch lets the compiler
// vectorize it (a search loop takes ~14 ns a value, most of quantizing a model to nf4).
uint8_t nf4_encode(float scaled, const std::array<float, 15>& mid) {
  unsigned q = 0;
  for (size_t k = 0; k < mid.size(); ++k) q += mid[k] < scaled ? 1u : 0u;
  return static_cast<uint8_t>(q);
}

// bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for each
// exponent e = 0..6, the midpoints of 2^e + 1 evenly spaced points in [0.1, 1] scaled by
// 10^(e-6), with both signs, then 0 and 1, sorted. Written out rather than computed because
// the values come from torch.linspace in float32, whose rounding (vectorized, split at the
// midpoint) differs from a plain loop in the last bit of some entries; the golden test checks
// this table against bitsandbytes' own map.
constexpr std::array<float, 256> dynamic_map_values = {
    -0x1.fc6666p-1f, -0x1.f53334p-1f, -0x1.eep-1f, -0x1.e6ccccp-1f, -0x1.df999ap-1f, -0x1.d86666p-1f,
    -0x1.d13334p-1f, -0x1.cap-1f, -0x1.c2ccccp-1f, -0x1.bb999ap-1f, -0x1.b46666p-1f, -0x1.ad3334p-1f,
    -0x1.a6p-1f, -0x1.9eccccp-1f, -0x1.97999ap-1f, -0x1.906666p-1f, -0x1.893334p-1f, -0x1.82p-1f,
    -0x1.7accccp-1f, -0x1.73999ap-1f, -0x1.6c6668p-1f, -0x1.653334p-1f, -0x1.5ep-1f, -0x1.56ccccp-1f,
    -0x1.4f999ap-1f, -0x1.486668p-1f, -0x1.413334p-1f, -0x1.3ap-1f, -0x1.32ccccp-1f, -0x1.2b999ap-1f,
    -0x1.246668p-1f, -0x1.1d3334p-1f, -0x1.16p-1f, -0x1.0eccccp-1f, -0x1.079998p-1f, -0x1.006666p-1f,
    -0x1.f26664p-2f, -0x1.e4p-2f, -0x1.d59998p-2f, -0x1.c73334p-2f, -0x1.b8ccccp-2f, -0x1.aa6666p-2f,
    -0x1.9cp-2f, -0x1.8d9998p-2f, -0x1.7f3334p-2f, -0x1.70ccccp-2f, -0x1.626666p-2f, -0x1.54p-2f,
    -0x1.459998p-2f, -0x1.373334p-2f, -0x1.28ccccp-2f, -0x1.1a6668p-2f, -0x1.0cp-2f, -0x1.fb3332p-3f,
    -0x1.de6666p-3f, -0x1.c1999ap-3f, -0x1.a4ccccp-3f, -0x1.88p-3f, -0x1.6b3334p-3f, -0x1.4e6666p-3f,
    -0x1.31999ap-3f, -0x1.14ccccp-3f, -0x1.fp-4f, -0x1.b66668p-4f, -0x1.93d70ap-4f, -0x1.8851eep-4f,
    -0x1.7ccccep-4f, -0x1.7147aep-4f, -0x1.65c29p-4f, -0x1.5a3d7p-4f, -0x1.4eb854p-4f, -0x1.433334p-4f,
    -0x1.37ae14p-4f, -0x1.2c28f6p-4f, -0x1.20a3d6p-4f, -0x1.151ebap-4f, -0x1.09999ap-4f, -0x1.fc28f6p-5f,
    -0x1.e51ebap-5f, -0x1.ce147ap-5f, -0x1.b70a3ep-5f, -0x1.ap-5f, -0x1.88f5c2p-5f, -0x1.71eb86p-5f,
    -0x1.5ae146p-5f, -0x1.43d70ap-5f, -0x1.2ccccep-5f, -0x1.15c29p-5f, -0x1.fd70a4p-6f, -0x1.cf5c2ap-6f,
    -0x1.a147aep-6f, -0x1.733334p-6f, -0x1.451ebap-6f, -0x1.170a3ep-6f, -0x1.d1eb86p-7f, -0x1.75c29p-7f,
    -0x1.3e76c8p-7f, -0x1.2c083p-7f, -0x1.19999ap-7f, -0x1.072b02p-7f, -0x1.e978d4p-8f, -0x1.c49ba6p-8f,
    -0x1.9fbe76p-8f, -0x1.7ae148p-8f, -0x1.56041ap-8f, -0x1.3126e8p-8f, -0x1.0c49bap-8f, -0x1.ced914p-9f,
    -0x1.851eb8p-9f, -0x1.3b645ap-9f, -0x1.e353f8p-10f, -0x1.4fdf3ap-10f, -0x1.eecbfep-11f, -0x1.b3d07cp-11f,
    -0x1.78d5p-11f, -0x1.3dd982p-11f, -0x1.02de02p-11f, -0x1.8fc506p-12f, -0x1.19ce0ap-12f, -0x1.47ae16p-13f,
    -0x1.743e96p-14f, -0x1.15df66p-14f, -0x1.6f0068p-15f, -0x1.64840cp-16f, -0x1.040bfep-17f, -0x1.b43528p-19f,
    -0x1.27476ep-21f, 0x0p+0f, 0x1.27476ep-21f, 0x1.b43528p-19f, 0x1.040bfep-17f, 0x1.64840cp-16f,
    0x1.6f0068p-15f, 0x1.15df66p-14f, 0x1.743e96p-14f, 0x1.47ae16p-13f, 0x1.19ce0ap-12f, 0x1.8fc506p-12f,
    0x1.02de02p-11f, 0x1.3dd982p-11f, 0x1.78d5p-11f, 0x1.b3d07cp-11f, 0x1.eecbfep-11f, 0x1.4fdf3ap-10f,
    0x1.e353f8p-10f, 0x1.3b645ap-9f, 0x1.851eb8p-9f, 0x1.ced914p-9f, 0x1.0c49bap-8f, 0x1.3126e8p-8f,
    0x1.56041ap-8f, 0x1.7ae148p-8f, 0x1.9fbe76p-8f, 0x1.c49ba6p-8f, 0x1.e978d4p-8f, 0x1.072b02p-7f,
    0x1.19999ap-7f, 0x1.2c083p-7f, 0x1.3e76c8p-7f, 0x1.75c29p-7f, 0x1.d1eb86p-7f, 0x1.170a3ep-6f,
    0x1.451ebap-6f, 0x1.733334p-6f, 0x1.a147aep-6f, 0x1.cf5c2ap-6f, 0x1.fd70a4p-6f, 0x1.15c29p-5f,
    0x1.2ccccep-5f, 0x1.43d70ap-5f, 0x1.5ae146p-5f, 0x1.71eb86p-5f, 0x1.88f5c2p-5f, 0x1.ap-5f,
    0x1.b70a3ep-5f, 0x1.ce147ap-5f, 0x1.e51ebap-5f, 0x1.fc28f6p-5f, 0x1.09999ap-4f, 0x1.151ebap-4f,
    0x1.20a3d6p-4f, 0x1.2c28f6p-4f, 0x1.37ae14p-4f, 0x1.433334p-4f, 0x1.4eb854p-4f, 0x1.5a3d7p-4f,
    0x1.65c29p-4f, 0x1.7147aep-4f, 0x1.7ccccep-4f, 0x1.8851eep-4f, 0x1.93d70ap-4f, 0x1.b66668p-4f,
    0x1.fp-4f, 0x1.14ccccp-3f, 0x1.31999ap-3f, 0x1.4e6666p-3f, 0x1.6b3334p-3f, 0x1.88p-3f,
    0x1.a4ccccp-3f, 0x1.c1999ap-3f, 0x1.de6666p-3f, 0x1.fb3332p-3f, 0x1.0cp-2f, 0x1.1a6668p-2f,
    0x1.28ccccp-2f, 0x1.373334p-2f, 0x1.459998p-2f, 0x1.54p-2f, 0x1.626666p-2f, 0x1.70ccccp-2f,
    0x1.7f3334p-2f, 0x1.8d9998p-2f, 0x1.9cp-2f, 0x1.aa6666p-2f, 0x1.b8ccccp-2f, 0x1.c73334p-2f,
    0x1.d59998p-2f, 0x1.e4p-2f, 0x1.f26664p-2f, 0x1.006666p-1f, 0x1.079998p-1f, 0x1.0eccccp-1f,
    0x1.16p-1f, 0x1.1d3334p-1f, 0x1.246668p-1f, 0x1.2b999ap-1f, 0x1.32ccccp-1f, 0x1.3ap-1f,
    0x1.413334p-1f, 0x1.486668p-1f, 0x1.4f999ap-1f, 0x1.56ccccp-1f, 0x1.5ep-1f, 0x1.653334p-1f,
    0x1.6c6668p-1f, 0x1.73999ap-1f, 0x1.7accccp-1f, 0x1.82p-1f, 0x1.893334p-1f, 0x1.906666p-1f,
    0x1.97999ap-1f, 0x1.9eccccp-1f, 0x1.a6p-1f, 0x1.ad3334p-1f, 0x1.b46666p-1f, 0x1.bb999ap-1f,
    0x1.c2ccccp-1f, 0x1.cap-1f, 0x1.d13334p-1f, 0x1.d86666p-1f, 0x1.df999ap-1f, 0x1.e6ccccp-1f,
    0x1.eep-1f, 0x1.f53334p-1f, 0x1.fc6666p-1f, 0x1p+0f,
};

void check_blocksize(size_t blocksize) {
  if (blocksize < 32 || blocksize > 4096 || (blocksize & (blocksize - 1)) != 0) {
    throw std::invalid_argument("nf4 blocksize must be a power of two from 32 to 4096");
  }
}

}  // namespace

const std::array<float, 256>& dynamic_map() { return dynamic_map_values; }

void quantize_nf4(const float* x, size_t n, size_t blocksize, uint8_t* packed, float* absmax) {
  check_blocksize(blocksize);
  const std::array<float, 15> mid = nf4_midpoints();
  const size_t full = n - n % blocksize;
  uint8_t pending = 0;  // high nibble waiting for its low nibble
  for (size_t b = 0; b < nf4_blocks(n, blocksize); ++b) {
    const size_t start = b * blocksize;
    const size_t end = std::min(n, start + blocksize);
    float amax = 0.0f;
    for (size_t i = start; i < end; ++i) amax = std::max(amax, std::fabs(x[i]));
    // bitsandbytes (torch path): a full block multiplies by the reciprocal of absmax (clamped
    // away from 0) and stores absmax as is; the partial last block divides by its clamped
    // absmax and stores the clamped value.
    const float divisor = std::max(amax, 1e-38f);
    const bool is_full = end <= full;
    const float inv = 1.0f / divisor;
    absmax[b] = is_full ? amax : divisor;
    if (is_full) {
      // A full block starts on an even element (blocksize is even): its codes pair up within
      // it. Encoding them all first, then packing, keeps both loops free of branches.
      uint8_t codes[4096];  // the largest blocksize
      for (size_t i = 0; i < blocksize; ++i) codes[i] = nf4_encode(std::clamp(x[start + i] * inv, -1.0f, 1.0f), mid);
      for (size_t i = 0; i < blocksize; i += 2) packed[(start + i) >> 1] = static_cast<uint8_t>((codes[i] << 4) | codes[i + 1]);
      continue;
    }
    for (size_t i = start; i < end; ++i) {
      const float s = std::clamp(x[i] / divisor, -1.0f, 1.0f);
      const uint8_t q = nf4_encode(s, mid);
      if ((i & 1) == 0) {
        pending = q;
      } else {
        packed[i >> 1] = static_cast<uint8_t>((pending << 4) | q);
      }
    }
  }
  if (n & 1) packed[n >> 1] = static_cast<uint8_t>((pending << 4) | nf4_encode(0.0f, mid));
}

nf4_tensor quantize_nf4(const float* x, size_t n, size_t blocksize) {
  nf4_tensor t;
  t.n = n;
  t.blocksize = blocksize;
  t.packed.resize((n + 1) / 2);
  t.absmax.resize(nf4_blocks(n, blocksize));
  quantize_nf4(x, n, blocksize, t.packed.data(), t.absmax.data());
  return t;
}

void dequantize_nf4(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize, float* out) {
  check_blocksize(blocksize);
  for (size_t i = 0; i < n; ++i) out[i] = nf4_code[nf4_nibble(packed, i)] * absmax[i / blocksize];
}

void quantize_blockwise_8bit(const float* x, size_t n, size_t blocksize, const std::array<float, 256>& code,
                             uint8_t* codes, float* absmax2) {
  if (blocksize == 0) throw std::invalid_argument("blocksize must be positive");
  // bitsandbytes' CPU kernel (0.50): a value is scaled by the reciprocal of its block's absmax,
  // placed on a grid of 65536 points over [-1, 1], and the grid point's nearest map entry
  // (from a table built once per map) is its code. The grid makes values within half a grid
  // step of a decision boundary take either neighbour, so the exact nearest entry would not
  // reproduce its files; this does, to the bit.
  constexpr int grid = 65536;
  std::vector<uint8_t> table(grid);
  float mid[255];
  for (int i = 0; i < 255; ++i) mid[i] = 0.5f * (code[static_cast<size_t>(i)] + code[static_cast<size_t>(i) + 1]);
  int c = 0;
  for (int i = 0; i < grid; ++i) {
    const float v = -1.0f + (2.0f * static_cast<float>(i)) / static_cast<float>(grid - 1);
    while (c < 255 && mid[c] < v) ++c;
    table[static_cast<size_t>(i)] = static_cast<uint8_t>(c);
  }
  for (size_t start = 0, b = 0; start < n; start += blocksize, ++b) {
    const size_t end = std::min(n, start + blocksize);
    float amax = 0.0f;
    for (size_t i = start; i < end; ++i) amax = std::max(amax, std::fabs(x[i]));
    absmax2[b] = amax;
    if (amax == 0.0f) {
      std::fill(codes + start, codes + end, uint8_t{0});  // as bitsandbytes: code 0 for an all-zero block
      continue;
    }
    const float inv = 1.0f / amax;
    for (size_t i = start; i < end; ++i) {
      const float v = std::clamp(x[i] * inv, -1.0f, 1.0f);
      // Separate multiply and add (this file is built without FMA contraction on x86-64).
      const float pos = (v + 1.0f) * 0.5f;
      const float scaled = pos * static_cast<float>(grid - 1);
      codes[i] = table[static_cast<uint16_t>(scaled + 0.5f)];
    }
  }
}

void dequantize_blockwise_8bit(const uint8_t* codes, const float* absmax2, const float* code, size_t n,
                               size_t blocksize, float offset, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = code[codes[i]] * absmax2[i / blocksize] + offset;
}

nf4_double_quant double_quantize(const float* absmax, size_t blocks) {
  if (blocks == 0) return double_quantize(absmax, blocks, 0.0f);
  // As torch: the float32 sum divided by the count (here the sum is rounded once).
  double sum = 0.0;
  for (size_t i = 0; i < blocks; ++i) sum += absmax[i];
  return double_quantize(absmax, blocks, static_cast<float>(sum) / static_cast<float>(blocks));
}

nf4_double_quant double_quantize(const float* absmax, size_t blocks, float offset) {
  nf4_double_quant dq;
  dq.code = dynamic_map();
  dq.codes.resize(blocks);
  dq.absmax2.resize((blocks + nf4_nested_blocksize - 1) / nf4_nested_blocksize);
  dq.offset = offset;
  if (blocks == 0) return dq;
  std::vector<float> centred(blocks);
  for (size_t i = 0; i < blocks; ++i) centred[i] = absmax[i] - dq.offset;
  quantize_blockwise_8bit(centred.data(), blocks, nf4_nested_blocksize, dq.code, dq.codes.data(),
                          dq.absmax2.data());
  return dq;
}

void dequantize_absmax(const nf4_double_quant& dq, float* absmax) {
  dequantize_blockwise_8bit(dq.codes.data(), dq.absmax2.data(), dq.code.data(), dq.codes.size(), dq.blocksize,
                            dq.offset, absmax);
}

float dot_nf4_f32(const uint8_t* packed, const float* absmax, size_t blocksize, size_t start, const float* x,
                  size_t n) {
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const size_t e = start + i;
    sum += static_cast<double>(nf4_code[nf4_nibble(packed, e)] * absmax[e / blocksize]) * x[i];
  }
  return static_cast<float>(sum);
}

}  // namespace moat::engine::quant

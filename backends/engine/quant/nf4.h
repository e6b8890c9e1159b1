// NF4 in the bitsandbytes layout, bit for bit (checked against bitsandbytes' own CPU path by
// tests/unit/quant/nf4_golden_test.cpp, goldens from tools/make_bnb_goldens.py), so checkpoints
// saved by transformers with bitsandbytes 4-bit load as they are.
//
// A tensor of n values is flattened (row-major, rows are NOT padded) and cut into blocks of
// `blocksize` (64) values:
//   packed [ceil(n/2)] u8   two 4-bit codes per byte, the FIRST element in the HIGH nibble;
//                           for an odd n the last low nibble is code 7 (0.0)
//   absmax [ceil(n/64)] f32 the block's max |x|; value = nf4_code[code] * absmax[block]
// Double quantization (bitsandbytes' compress_statistics=True, the transformers default) stores
// absmax in 8 bits instead:
//   offset          f32     mean of absmax
//   codes  [blocks] u8      absmax - offset, quantized with the 8-bit dynamic map
//   absmax2 [ceil(blocks/256)] f32  per 256 codes, their max |absmax - offset|
//   code   [256]    f32     the dynamic map (a checkpoint's nested_quant_map)
//   absmax[b] = code[codes[b]] * absmax2[b / 256] + offset
//
//   nf4_tensor t = quantize_nf4(w, n);                       // w: n floats
//   nf4_double_quant dq = double_quantize(t.absmax.data(), t.absmax.size());
//   std::vector<float> absmax(t.absmax.size());
//   dequantize_absmax(dq, absmax.data());                     // the absmax a checkpoint gives
//   dequantize_nf4(t.packed.data(), absmax.data(), n, 64, out);
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace moat::engine::quant {

inline constexpr size_t nf4_blocksize = 64;
inline constexpr size_t nf4_nested_blocksize = 256;

// The 16 NF4 values (quantiles of N(0,1) scaled to [-1, 1]), bitsandbytes' table, sorted.
extern const std::array<float, 16> nf4_code;

// bitsandbytes' signed 8-bit dynamic map (create_dynamic_map()), sorted, 256 values.
const std::array<float, 256>& dynamic_map();

inline constexpr size_t nf4_blocks(size_t n, size_t blocksize = nf4_blocksize) {
  return (n + blocksize - 1) / blocksize;
}

struct nf4_tensor {
  size_t n = 0;
  size_t blocksize = nf4_blocksize;
  std::vector<uint8_t> packed;  // [ceil(n / 2)]
  std::vector<float> absmax;    // [nf4_blocks(n, blocksize)]
};

struct nf4_double_quant {
  std::vector<uint8_t> codes;   // [blocks]
  std::vector<float> absmax2;   // [ceil(blocks / 256)]
  float offset = 0.0f;
  std::array<float, 256> code{};
  size_t blocksize = nf4_nested_blocksize;
};

// x: n floats -> packed [ceil(n/2)], absmax [nf4_blocks(n, blocksize)]. blocksize: a power
// of two from 32 to 4096 (64 for the checkpoints moat writes).
void quantize_nf4(const float* x, size_t n, size_t blocksize, uint8_t* packed, float* absmax);
nf4_tensor quantize_nf4(const float* x, size_t n, size_t blocksize = nf4_blocksize);
// packed, absmax -> out: n floats.
void dequantize_nf4(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize, float* out);

// The code (0..15) of flat element i.
inline unsigned nf4_nibble(const uint8_t* packed, size_t i) {
  return (i & 1) ? (packed[i >> 1] & 0x0fu) : (packed[i >> 1] >> 4);
}

// Second level: absmax [blocks] -> offset, 8-bit codes and fp32 scales (blocks of 256).
// The offset is the correctly rounded mean; bitsandbytes takes torch's float32 mean, whose
// summation order can put it one ulp away (then a code may differ where a value sits on a
// grid boundary). Everything after the offset is bitsandbytes' arithmetic exactly: the
// overload taking the offset reproduces its codes and scales to the bit.
nf4_double_quant double_quantize(const float* absmax, size_t blocks);
nf4_double_quant double_quantize(const float* absmax, size_t blocks, float offset);
// bitsandbytes' 8-bit blockwise quantization with a code map, as its CPU kernel computes it:
// per block of `blocksize`, absmax2 = max |x|, and x * (1 / absmax2) goes through a 65536-point
// grid to the map entry nearest that grid point (an all-zero block gets code 0).
// x: n floats -> codes [n], absmax2 [ceil(n / blocksize)].
void quantize_blockwise_8bit(const float* x, size_t n, size_t blocksize, const std::array<float, 256>& code,
                             uint8_t* codes, float* absmax2);
// codes [n] -> out [n]: code[codes[i]] * absmax2[i / blocksize] + offset.
void dequantize_blockwise_8bit(const uint8_t* codes, const float* absmax2, const float* code, size_t n,
                               size_t blocksize, float offset, float* out);
// dq -> the first-level absmax [dq.codes.size()].
void dequantize_absmax(const nf4_double_quant& dq, float* absmax);

// Reference dot product of the flat elements [start, start + n) with x [n] (a matrix row
// when start = row * cols; rows may start inside a block).
float dot_nf4_f32(const uint8_t* packed, const float* absmax, size_t blocksize, size_t start, const float* x,
                  size_t n);

}  // namespace moat::engine::quant

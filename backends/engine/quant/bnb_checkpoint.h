// Reading bitsandbytes 4-bit (NF4) tensors as transformers saves them in safetensors: for a
// weight W the checkpoint holds
//   W                                     u8 [ceil(n/2), 1]   packed codes (nf4.h layout)
//   W.absmax                              u8 [blocks]          (f32 when not double-quantized)
//   W.quant_map                           f32 [16]             the NF4 table
//   W.nested_absmax                       f32 [ceil(blocks/256)]
//   W.nested_quant_map                    f32 [256]            the dynamic map
//   W.quant_state.bitsandbytes__nf4       u8 [len]             JSON: quant_type, blocksize,
//                                                              dtype, shape, nested_blocksize,
//                                                              nested_dtype, nested_offset
// The loader finds the tensors; this turns them into what the kernels take (packed codes as
// they are, plus fp32 absmax per block).
//
//   bnb_nf4_state st = parse_bnb_quant_state({json_bytes, json_len});
//   std::vector<float> absmax = bnb_absmax(st, absmax_u8, blocks, nested_absmax, nested_count,
//                                          nested_quant_map, quant_map);
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace moat::engine::quant {

struct bnb_nf4_state {
  std::string quant_type;      // "nf4" (fp4 is refused)
  size_t blocksize = 64;
  std::string dtype;           // the original dtype: float32, float16 or bfloat16
  std::vector<size_t> shape;   // the original shape, e.g. [out_features, in_features]
  bool nested = false;         // double-quantized
  size_t nested_blocksize = 256;
  float nested_offset = 0.0f;
  size_t numel() const;
};

// Parses the JSON held by a `*.quant_state.bitsandbytes__nf4` tensor. Throws
// std::invalid_argument naming the key that is missing or wrong.
bnb_nf4_state parse_bnb_quant_state(std::string_view json);

// The fp32 absmax of every block. For a nested state: absmax_codes are the u8 codes
// (`*.absmax`, `blocks` of them), nested_absmax / nested_quant_map the second level; otherwise
// absmax_f32 is `*.absmax` as stored. quant_map (16 floats, may be null) must be the NF4 table.
// Throws std::invalid_argument on inconsistent sizes.
std::vector<float> bnb_absmax(const bnb_nf4_state& st, const uint8_t* absmax_codes, const float* absmax_f32,
                              size_t blocks, const float* nested_absmax, size_t nested_count,
                              const float* nested_quant_map, const float* quant_map);

// One tensor of a checkpoint as its file stores it (a loader's view; nothing is owned).
struct raw_tensor {
  std::string dtype;             // safetensors dtype: "U8", "F32", ...
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t bytes = 0;
};

// A bitsandbytes NF4 weight ready for the kernels: the packed codes as stored (not copied) and
// the fp32 absmax rebuilt from the double-quantized statistics.
struct bnb_nf4_weight {
  bnb_nf4_state state;
  const uint8_t* packed = nullptr;  // [ceil(numel/2)], points into the checkpoint
  std::vector<float> absmax;        // [blocks]
};

// Finds every NF4 weight among a checkpoint's tensors (each named by its
// `<name>.quant_state.bitsandbytes__nf4` tensor), checks every size against the quant_state,
// and rebuilds absmax. Keyed by the weight's name. Throws std::invalid_argument naming the
// weight and what is wrong (a missing companion tensor, a wrong dtype or size).
std::map<std::string, bnb_nf4_weight> collect_bnb_nf4(const std::map<std::string, raw_tensor>& tensors);

// bitsandbytes 8-bit (LLM.int8, Linear8bitLt) checkpoints: `W` int8 [rows, cols] and
// `W.SCB` f32 [rows], each row's absmax. value = q * SCB / 127, i.e. moat's int8 per channel
// with scale = SCB / 127 (bnb_int8_scale), so the int8 kernels read such weights as they are.
// Quantize and dequantize exactly as bitsandbytes does (bit-exact, checked by goldens):
// q = round_half_even(x * (127 / absmax)); dequantized = (q * SCB) * (1 / 127).
void quantize_bnb_int8_row(const float* x, size_t n, int8_t* q, float* scb);
void dequantize_bnb_int8(const int8_t* q, const float* scb, size_t rows, size_t cols, float* out);
inline float bnb_int8_scale(float scb) { return scb / 127.0f; }

}  // namespace moat::engine::quant

// tensor: a typed, shaped view of weight memory owned elsewhere (an mmap or a buffer held by
// weight_storage). Matmuls dispatch on `type`, so a quantized format is a new dtype plus a
// kernel, not a new model class.
//
//   const tensor& w = weights.layers[0].wq;       // shape {q_dim, hidden}: {rows, cols}
//   std::vector<float> row0(w.cols()); w.row_to_f32(0, row0.data());  // any dtype -> f32
//
// Shapes follow PyTorch: shape[0] is the outermost (slowest) dimension. A linear weight is
// {out_features, in_features}, row-major, so y = W x reads one contiguous row per output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moat::engine {

enum class dtype : uint8_t {
  f32,
  f16,
  bf16,
  q8_0,  // GGUF: blocks of 32 (f16 scale, 32 x int8) = 34 bytes
  q4_0,  // GGUF: blocks of 32 (f16 scale, 16 bytes of nibbles) = 18 bytes
  // Quantized on load (options.quant, backends/cpu/quant/matmul.h layouts); `scales` points at
  // the f32 scales. Read by the CPU quantized matmul; row_to_f32 is the scalar reference.
  int8,  // [rows, cols] int8, scales [rows] (symmetric, per output channel)
  int4,  // per row int4_row_bytes(cols, 64) bytes (Q4_0 nibble order), scales [rows][ceil(cols/64)]
  nf4,   // bitsandbytes packing over the whole matrix (first element in the high nibble), cols
         // even; scales = absmax per 64 consecutive elements of the flattened matrix
  // Raw integer tensors of a safetensors file (U8 / I8): bitsandbytes packed codes, int8 rows,
  // quant_state JSON. Not weights by themselves: the loader turns them into nf4 / int8 tensors
  // (or refuses them); row_to_f32 converts the integers as they are.
  u8,
  i8,
};

std::string_view dtype_name(dtype t);
// Bytes for `n` consecutive elements of one row (n a multiple of the block size for q*_0).
size_t dtype_row_bytes(dtype t, int64_t n);

struct tensor {
  std::string name;            // checkpoint name, for error messages
  dtype type = dtype::f32;
  std::vector<int64_t> shape;  // PyTorch order, outermost first
  const void* data = nullptr;  // not owned: lives as long as the loaded_model's storage
  const float* scales = nullptr;  // int8 / int4 / nf4 only; not owned, like data
  // An nf4 tensor of a bitsandbytes checkpoint holds its weight as it is stored: blocks of 64
  // over the flattened matrix, so row r starts at element r * cols (cols must be even).

  int64_t numel() const;
  int64_t rows() const { return shape.empty() ? 0 : shape.size() == 1 ? 1 : shape[0]; }
  int64_t cols() const { return shape.empty() ? 0 : shape.back(); }
  size_t bytes() const;
  bool empty() const { return data == nullptr; }
  const uint8_t* row_ptr(int64_t r) const;
  // Converts row r (cols() elements) to f32 into out[0..cols()).
  void row_to_f32(int64_t r, float* out) const;
};

// Scalar conversions shared by loaders and kernels.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t b);

}  // namespace moat::engine

// One entry point for the forward pass: a weight matrix in any moat format, and y = W x for a
// batch of activation rows. Activations are quantized once per call (prepare_activations), then
// rows can be split across threads (matmul_rows on disjoint [row_begin, row_end) ranges).
//
//   quantized_matrix w = quantize_matrix(weight_format::nf4, f32_weights, rows, cols);
//   std::vector<block_q8_0> scratch(activation_blocks(w.format, cols, batch));
//   prepare_activations(k, w.format, x, batch, cols, scratch.data());        // x: [batch, cols]
//   matmul_rows(k, w.view(), x, scratch.data(), batch, y, rows, 0, rows);    // y: [batch, rows]
//
// A view can also point at mapped memory (a GGUF Q8_0 / Q4_0 tensor, a bitsandbytes NF4
// checkpoint) without copying: qmatrix_view{weight_format::q4_0, rows, cols, ptr, nullptr}.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "cpu/quant/kernels.h"

namespace moat::cpu::quant {

enum class weight_format { q8_0, q4_0, int8, int4_g32, int4_g64, int4_g128, nf4 };

// "q8_0", "q4_0", "int8", "int4" (groups of 64), "int4_g32", "int4_g64", "int4_g128", "nf4".
std::optional<weight_format> parse_weight_format(std::string_view name);
const char* weight_format_name(weight_format f);
// Bytes of weight data (codes and scales) for a [rows, cols] matrix.
size_t weight_bytes(weight_format f, size_t rows, size_t cols);

// Non-owning. data / scales per format:
//   q8_0, q4_0: data = rows * blocks(cols) GGUF blocks; scales unused
//   int8:       data = [rows, cols] int8; scales = [rows]
//   int4_g*:    data = rows * int4_row_bytes(cols, G); scales = rows * int4_row_groups(cols, G)
//   nf4:        data = packed [ceil(rows*cols/2)] (bitsandbytes layout); scales = absmax
//               per 64 values (already un-double-quantized, see engine/quant/bnb_checkpoint.h)
struct qmatrix_view {
  weight_format format;
  size_t rows = 0;
  size_t cols = 0;
  const void* data = nullptr;
  const float* scales = nullptr;
};

struct quantized_matrix {
  weight_format format = weight_format::q8_0;
  size_t rows = 0;
  size_t cols = 0;
  std::vector<uint8_t> data;
  std::vector<float> scales;
  qmatrix_view view() const { return {format, rows, cols, data.data(), scales.data()}; }
};

// w: [rows, cols] floats. NF4 here is single-level (fp32 absmax), the form the kernels read.
quantized_matrix quantize_matrix(weight_format f, const float* w, size_t rows, size_t cols);

// Q8_0 blocks of scratch that prepare_activations needs (0 for nf4, which reads floats).
size_t activation_blocks(weight_format f, size_t cols, size_t batch);
void prepare_activations(const dot_kernels& k, weight_format f, const float* x, size_t batch, size_t cols,
                         block_q8_0* scratch);
// y[b * y_stride + r] = row r of W . x[b] for r in [row_begin, row_end), b < batch.
// x: [batch, cols] floats (read by nf4); xq: what prepare_activations wrote.
void matmul_rows(const dot_kernels& k, const qmatrix_view& w, const float* x, const block_q8_0* xq, size_t batch,
                 float* y, size_t y_stride, size_t row_begin, size_t row_end);

}  // namespace moat::cpu::quant

// Quantizing a whole [rows, cols] weight matrix on several threads, for quantize-on-load and
// `moat quantize`. The values come from a callback that converts a range of rows to f32 (the
// source may be f16, bf16, a GGUF block format...), so no f32 copy of the whole matrix is made:
// each worker converts a chunk of rows into its own scratch and quantizes it.
//
//   std::vector<uint8_t> q(quantized_bytes(row_format::int8, rows, cols));
//   std::vector<float> s(quantized_scales(row_format::int8, rows, cols));
//   quantize_rows(row_format::int8, rows, cols,
//                 [&](size_t r0, size_t r1, float* out) { /* rows [r0, r1) -> out */ },
//                 q.data(), s.data(), /*threads=*/4);
//
// The result does not depend on `threads`: every row (int8, int4) or block of 64 flat elements
// (nf4) is quantized from its own values only, and chunks never split one, so any partition
// gives the bytes the serial loop gives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace moat::engine::quant {

enum class row_format : uint8_t {
  int8,      // per output channel: [rows, cols] int8, scales [rows] (quantize_int8_row)
  int4_g64,  // per row int4_row_bytes(cols, 64) bytes, scales [rows][ceil(cols / 64)] (quantize_int4_row)
  nf4,       // the flattened matrix in blocks of 64 (quantize_nf4, single-level absmax); cols even
};

// Output sizes: bytes of quantized data and number of f32 scales.
size_t quantized_bytes(row_format f, size_t rows, size_t cols);
size_t quantized_scales(row_format f, size_t rows, size_t cols);

// fill(r0, r1, out) writes rows [r0, r1) as (r1 - r0) * cols floats into out. It is called
// from several threads at once, on disjoint row ranges.
using row_fill = std::function<void(size_t r0, size_t r1, float* out)>;

// Quantizes the matrix into data [quantized_bytes] and scales [quantized_scales] on up to
// `threads` threads (the calling thread is one of them; 0 or 1: serial). Throws
// std::invalid_argument for nf4 with an odd cols; an exception thrown by fill on any thread is
// rethrown here after every thread has stopped.
void quantize_rows(row_format f, size_t rows, size_t cols, const row_fill& fill, uint8_t* data, float* scales,
                   unsigned threads);

}  // namespace moat::engine::quant

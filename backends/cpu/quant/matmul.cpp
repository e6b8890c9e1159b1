#include "cpu/quant/matmul.h"

#include <stdexcept>
#include <string>

namespace moat::cpu::quant {
namespace {

namespace q = engine::quant;

size_t group_of(weight_format f) {
  switch (f) {
    case weight_format::int4_g32: return 32;
    case weight_format::int4_g64: return 64;
    case weight_format::int4_g128: return 128;
    default: return 0;
  }
}

}  // namespace

std::optional<weight_format> parse_weight_format(std::string_view name) {
  if (name == "q8_0") return weight_format::q8_0;
  if (name == "q4_0") return weight_format::q4_0;
  if (name == "int8") return weight_format::int8;
  if (name == "int4" || name == "int4_g64") return weight_format::int4_g64;
  if (name == "int4_g32") return weight_format::int4_g32;
  if (name == "int4_g128") return weight_format::int4_g128;
  if (name == "nf4") return weight_format::nf4;
  return std::nullopt;
}

const char* weight_format_name(weight_format f) {
  switch (f) {
    case weight_format::q8_0: return "q8_0";
    case weight_format::q4_0: return "q4_0";
    case weight_format::int8: return "int8";
    case weight_format::int4_g32: return "int4_g32";
    case weight_format::int4_g64: return "int4_g64";
    case weight_format::int4_g128: return "int4_g128";
    case weight_format::nf4: return "nf4";
  }
  return "unknown";
}

size_t weight_bytes(weight_format f, size_t rows, size_t cols) {
  switch (f) {
    case weight_format::q8_0: return rows * q::q8_0_blocks(cols) * sizeof(q::block_q8_0);
    case weight_format::q4_0: return rows * q::q4_0_blocks(cols) * sizeof(q::block_q4_0);
    case weight_format::int8: return rows * cols + rows * sizeof(float);
    case weight_format::int4_g32:
    case weight_format::int4_g64:
    case weight_format::int4_g128: {
      const size_t g = group_of(f);
      return rows * (q::int4_row_bytes(cols, g) + q::int4_row_groups(cols, g) * sizeof(float));
    }
    case weight_format::nf4: return (rows * cols + 1) / 2 + q::nf4_blocks(rows * cols) * sizeof(float);
  }
  return 0;
}

quantized_matrix quantize_matrix(weight_format f, const float* w, size_t rows, size_t cols) {
  quantized_matrix m;
  m.format = f;
  m.rows = rows;
  m.cols = cols;
  switch (f) {
    case weight_format::q8_0: {
      const size_t nb = q::q8_0_blocks(cols);
      m.data.resize(rows * nb * sizeof(q::block_q8_0));
      auto* blocks = reinterpret_cast<q::block_q8_0*>(m.data.data());
      for (size_t r = 0; r < rows; ++r) q::quantize_q8_0(w + r * cols, cols, blocks + r * nb);
      break;
    }
    case weight_format::q4_0: {
      const size_t nb = q::q4_0_blocks(cols);
      m.data.resize(rows * nb * sizeof(q::block_q4_0));
      auto* blocks = reinterpret_cast<q::block_q4_0*>(m.data.data());
      for (size_t r = 0; r < rows; ++r) q::quantize_q4_0(w + r * cols, cols, blocks + r * nb);
      break;
    }
    case weight_format::int8: {
      m.data.resize(rows * cols);
      m.scales.resize(rows);
      for (size_t r = 0; r < rows; ++r) {
        q::quantize_int8_row(w + r * cols, cols, reinterpret_cast<int8_t*>(m.data.data()) + r * cols, &m.scales[r]);
      }
      break;
    }
    case weight_format::int4_g32:
    case weight_format::int4_g64:
    case weight_format::int4_g128: {
      const size_t g = group_of(f);
      const size_t rb = q::int4_row_bytes(cols, g);
      const size_t rg = q::int4_row_groups(cols, g);
      m.data.resize(rows * rb);
      m.scales.resize(rows * rg);
      for (size_t r = 0; r < rows; ++r) q::quantize_int4_row(w + r * cols, cols, g, m.data.data() + r * rb, m.scales.data() + r * rg);
      break;
    }
    case weight_format::nf4: {
      q::nf4_tensor t = q::quantize_nf4(w, rows * cols);
      m.data = std::move(t.packed);
      m.scales = std::move(t.absmax);
      break;
    }
  }
  return m;
}

size_t activation_blocks(weight_format f, size_t cols, size_t batch) {
  return f == weight_format::nf4 ? 0 : batch * q::q8_0_blocks(cols);
}

void prepare_activations(const dot_kernels& k, weight_format f, const float* x, size_t batch, size_t cols,
                         block_q8_0* scratch) {
  if (f == weight_format::nf4) return;
  const size_t nb = q::q8_0_blocks(cols);
  for (size_t b = 0; b < batch; ++b) k.quantize_q8_0(x + b * cols, cols, scratch + b * nb);
}

void matmul_rows(const dot_kernels& k, const qmatrix_view& w, const float* x, const block_q8_0* xq, size_t batch,
                 float* y, size_t y_stride, size_t row_begin, size_t row_end) {
  const size_t cols = w.cols;
  const size_t nb = q::q8_0_blocks(cols);
  // The tiles, where this path has them (each weight block read once for the whole batch).
  switch (w.format) {
    case weight_format::q8_0:
      if (k.gemm_q8_0 == nullptr) break;
      return k.gemm_q8_0(static_cast<const block_q8_0*>(w.data), cols, xq, batch, y, y_stride, row_begin, row_end);
    case weight_format::q4_0:
      if (batch >= amx_int4_min_batch && k.gemm_q4_0_amx != nullptr) {
        return k.gemm_q4_0_amx(static_cast<const block_q4_0*>(w.data), cols, xq, batch, y, y_stride,
                               row_begin, row_end);
      }
      if (k.gemm_q4_0 == nullptr) break;
      return k.gemm_q4_0(static_cast<const block_q4_0*>(w.data), cols, xq, batch, y, y_stride, row_begin, row_end);
    case weight_format::int8:
      if (k.gemm_int8 == nullptr) break;
      return k.gemm_int8(static_cast<const int8_t*>(w.data), w.scales, cols, xq, batch, y, y_stride, row_begin, row_end);
    case weight_format::int4_g32:
    case weight_format::int4_g64:
    case weight_format::int4_g128:
      if (batch >= amx_int4_min_batch && k.gemm_int4_amx != nullptr) {
        return k.gemm_int4_amx(static_cast<const uint8_t*>(w.data), w.scales, group_of(w.format),
                               cols, xq, batch, y, y_stride, row_begin, row_end);
      }
      if (k.gemm_int4 == nullptr) break;
      return k.gemm_int4(static_cast<const uint8_t*>(w.data), w.scales, group_of(w.format), cols, xq, batch, y, y_stride,
                         row_begin, row_end);
    case weight_format::nf4:
      static_assert(q::nf4_blocksize == 64, "gemm_nf4 reads blocks of 64");
      if (cols % 64 != 0) break;
      if (batch >= nf4_bf16_min_batch && k.gemm_nf4_amx != nullptr) {
        return k.gemm_nf4_amx(static_cast<const uint8_t*>(w.data), w.scales, cols, x, batch, y,
                              y_stride, row_begin, row_end);
      }
      if (batch >= nf4_bf16_min_batch && k.gemm_nf4_bf16 != nullptr) {
        return k.gemm_nf4_bf16(static_cast<const uint8_t*>(w.data), w.scales, cols, x, batch, y, y_stride, row_begin,
                               row_end);
      }
      if (k.gemm_nf4 == nullptr) break;
      return k.gemm_nf4(static_cast<const uint8_t*>(w.data), w.scales, cols, x, batch, y, y_stride, row_begin, row_end);
  }
  // Otherwise one dot per (row, activation row); each weight row is used for the whole batch while it is in L1.
  for (size_t r = row_begin; r < row_end; ++r) {
    for (size_t b = 0; b < batch; ++b) {
      const block_q8_0* a = xq + b * nb;
      float v = 0.0f;
      switch (w.format) {
        case weight_format::q8_0: v = k.q8_0_q8_0(static_cast<const block_q8_0*>(w.data) + r * nb, a, cols); break;
        case weight_format::q4_0: v = k.q4_0_q8_0(static_cast<const block_q4_0*>(w.data) + r * nb, a, cols); break;
        case weight_format::int8: v = k.int8_q8_0(static_cast<const int8_t*>(w.data) + r * cols, w.scales[r], a, cols); break;
        case weight_format::int4_g32:
        case weight_format::int4_g64:
        case weight_format::int4_g128: {
          const size_t g = group_of(w.format);
          v = k.int4_q8_0(static_cast<const uint8_t*>(w.data) + r * q::int4_row_bytes(cols, g),
                          w.scales + r * q::int4_row_groups(cols, g), g, a, cols);
          break;
        }
        case weight_format::nf4:
          v = k.nf4_f32(static_cast<const uint8_t*>(w.data), w.scales, q::nf4_blocksize, r * cols, x + b * cols, cols);
          break;
      }
      y[b * y_stride + r] = v;
    }
  }
}

}  // namespace moat::cpu::quant

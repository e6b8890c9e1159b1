// Run-time choice of the kernel path, and the row loops of the matrix products.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu/quant/kernel_tables.h"

namespace moat::cpu::quant {

const char* isa_name(isa i) {
  switch (i) {
    case isa::scalar: return "scalar";
    case isa::avx2: return "avx2";
    case isa::avx512: return "avx512";
    case isa::avx512_vnni: return "avx512_vnni";
  }
  return "unknown";
}

bool isa_supported(isa i) {
  if (i == isa::scalar) return true;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl");
  switch (i) {
    case isa::avx2: return avx2 && detail::avx2_kernels() != nullptr;
    case isa::avx512: return avx512 && detail::avx512_kernels() != nullptr;
    case isa::avx512_vnni:
      return avx512 && __builtin_cpu_supports("avx512vnni") && detail::avx512_vnni_kernels() != nullptr;
    default: return false;
  }
#else
  return false;
#endif
}

isa best_isa() {
  isa best = isa::scalar;
  for (isa i : {isa::avx2, isa::avx512, isa::avx512_vnni}) {
    if (isa_supported(i)) best = i;
  }
  if (const char* want = std::getenv("MOAT_CPU_ISA")) {
    for (isa i : {isa::scalar, isa::avx2, isa::avx512, isa::avx512_vnni}) {
      if (std::strcmp(want, isa_name(i)) == 0 && isa_supported(i) && static_cast<int>(i) < static_cast<int>(best)) {
        best = i;
      }
    }
  }
  return best;
}

const dot_kernels* kernels_for(isa i) {
  if (!isa_supported(i)) return nullptr;
  switch (i) {
    case isa::scalar: return detail::scalar_kernels();
    case isa::avx2: return detail::avx2_kernels();
    case isa::avx512: return detail::avx512_kernels();
    case isa::avx512_vnni: return detail::avx512_vnni_kernels();
  }
  return nullptr;
}

float* detail::thread_scratch(size_t n) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

float* detail::thread_scratch_weights(size_t n) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

const dot_kernels& kernels() {
  static const dot_kernels* chosen = kernels_for(best_isa());
  return *chosen;
}

void gemv_q8_0(const dot_kernels& k, const block_q8_0* w, size_t cols, const block_q8_0* xq, float* y,
               size_t row_begin, size_t row_end) {
  if (k.gemm_q8_0 != nullptr) return k.gemm_q8_0(w, cols, xq, 1, y, 0, row_begin, row_end);
  const size_t nb = engine::quant::q8_0_blocks(cols);
  for (size_t r = row_begin; r < row_end; ++r) y[r] = k.q8_0_q8_0(w + r * nb, xq, cols);
}

void gemv_q4_0(const dot_kernels& k, const block_q4_0* w, size_t cols, const block_q8_0* xq, float* y,
               size_t row_begin, size_t row_end) {
  if (k.gemm_q4_0 != nullptr) return k.gemm_q4_0(w, cols, xq, 1, y, 0, row_begin, row_end);
  const size_t nb = engine::quant::q4_0_blocks(cols);
  for (size_t r = row_begin; r < row_end; ++r) y[r] = k.q4_0_q8_0(w + r * nb, xq, cols);
}

void gemv_int8(const dot_kernels& k, const engine::quant::int8_matrix& w, const block_q8_0* xq, float* y,
               size_t row_begin, size_t row_end) {
  if (k.gemm_int8 != nullptr) return k.gemm_int8(w.q.data(), w.scales.data(), w.cols, xq, 1, y, 0, row_begin, row_end);
  for (size_t r = row_begin; r < row_end; ++r) y[r] = k.int8_q8_0(w.row(r), w.scales[r], xq, w.cols);
}

void gemv_int4(const dot_kernels& k, const uint8_t* w, const float* scales, size_t cols, size_t group,
               const block_q8_0* xq, float* y, size_t row_begin, size_t row_end) {
  if (k.gemm_int4 != nullptr) return k.gemm_int4(w, scales, group, cols, xq, 1, y, 0, row_begin, row_end);
  const size_t row_bytes = engine::quant::int4_row_bytes(cols, group);
  const size_t row_groups = engine::quant::int4_row_groups(cols, group);
  for (size_t r = row_begin; r < row_end; ++r) {
    y[r] = k.int4_q8_0(w + r * row_bytes, scales + r * row_groups, group, xq, cols);
  }
}

void gemv_nf4(const dot_kernels& k, const uint8_t* packed, const float* absmax, size_t blocksize, size_t cols,
              const float* x, float* y, size_t row_begin, size_t row_end) {
  for (size_t r = row_begin; r < row_end; ++r) y[r] = k.nf4_f32(packed, absmax, blocksize, r * cols, x, cols);
}

void gemm_q8_0(const dot_kernels& k, const block_q8_0* w, size_t cols, const block_q8_0* xq, size_t batch,
               float* y, size_t y_stride, size_t row_begin, size_t row_end) {
  if (k.gemm_q8_0 != nullptr) return k.gemm_q8_0(w, cols, xq, batch, y, y_stride, row_begin, row_end);
  const size_t nb = engine::quant::q8_0_blocks(cols);
  for (size_t r = row_begin; r < row_end; ++r) {
    for (size_t b = 0; b < batch; ++b) y[b * y_stride + r] = k.q8_0_q8_0(w + r * nb, xq + b * nb, cols);
  }
}

void gemm_q4_0(const dot_kernels& k, const block_q4_0* w, size_t cols, const block_q8_0* xq, size_t batch,
               float* y, size_t y_stride, size_t row_begin, size_t row_end) {
  if (k.gemm_q4_0 != nullptr) return k.gemm_q4_0(w, cols, xq, batch, y, y_stride, row_begin, row_end);
  const size_t nb = engine::quant::q4_0_blocks(cols);
  for (size_t r = row_begin; r < row_end; ++r) {
    for (size_t b = 0; b < batch; ++b) y[b * y_stride + r] = k.q4_0_q8_0(w + r * nb, xq + b * nb, cols);
  }
}

}  // namespace moat::cpu::quant

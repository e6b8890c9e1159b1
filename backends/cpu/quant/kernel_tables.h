// Internal: the per-ISA tables, each defined in its own translation unit (compiled with that
// ISA's flags). A table getter returns nullptr when the build could not compile the path.
#pragma once

#include "cpu/quant/kernels.h"

namespace moat::cpu::quant::detail {

const dot_kernels* scalar_kernels();
const dot_kernels* avx2_kernels();
const dot_kernels* avx512_kernels();
const dot_kernels* avx512_vnni_kernels();

// The bf16 NF4 tiles (kernels_nf4_bf16.cpp), or nullptr where the CPU lacks AVX512_BF16 or the
// build could not compile them. The AVX-512 tables take them as gemm_nf4_bf16.
using nf4_gemm_fn = void (*)(const uint8_t* packed, const float* absmax, size_t cols, const float* x, size_t batch,
                             float* y, size_t y_stride, size_t row_begin, size_t row_end);
nf4_gemm_fn nf4_bf16_gemm();
// The AMX NF4 tiles (kernels_nf4_amx.cpp), or nullptr where the CPU lacks AMX-BF16 (or
// AVX512_BF16 / AVX512_VBMI, which its decode uses), the kernel refuses tile data, the build
// could not compile them, or MOAT_CPU_AMX=0. The first call asks the kernel for tile data
// (once per process). nf4_amx_unavailable() says why not (nullptr when they are available).
nf4_gemm_fn nf4_amx_gemm();
const char* nf4_amx_unavailable();

// The AMX int8 tiles of q4_0 and int4 (kernels_int4_amx.cpp; bit for bit the VNNI lanes'
// arithmetic), both null where the CPU lacks AMX-INT8, the kernel refuses tile data, the build
// could not compile them, or MOAT_CPU_AMX=0. int4_amx_unavailable() says why (or nullptr).
struct int4_amx_fns {
  void (*q4_0)(const block_q4_0* w, size_t cols, const block_q8_0* xq, size_t batch, float* y,
               size_t y_stride, size_t row_begin, size_t row_end) = nullptr;
  void (*int4)(const uint8_t* w, const float* scales, size_t group, size_t cols,
               const block_q8_0* xq, size_t batch, float* y, size_t y_stride, size_t row_begin,
               size_t row_end) = nullptr;
};
int4_amx_fns int4_amx_gemms();
const char* int4_amx_unavailable();

// A per-thread float buffer of at least n elements, valid until the thread's next call. It
// lives in dispatch.cpp (baseline ISA): a std::vector instantiated inside an ISA-specific file
// could emit weak out-of-line copies with that ISA's instructions that baseline callers link to.
float* thread_scratch(size_t n);
// A second, independent per-thread buffer (the tiles' weight scales of one row tile).
float* thread_scratch_weights(size_t n);

}  // namespace moat::cpu::quant::detail

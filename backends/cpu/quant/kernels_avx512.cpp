// The AVX-512 path (compiled with -mavx512f -mavx512bw -mavx512vl; chosen at run time only
// where the CPU has them). The kernels are in kernels_avx512.inc, shared with the VNNI path.
#include "cpu/quant/kernel_tables.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__F16C__)
#define MOAT_QUANT_VNNI 0
#include "cpu/quant/kernels_avx512.inc"
#include "cpu/quant/gemm_avx512.inc"

namespace moat::cpu::quant::detail {
const dot_kernels* avx512_kernels() {
  static const dot_kernels table{isa::avx512,     q8_0_q8_0,       q4_0_q8_0,       int8_q8_0,
                                 int4_q8_0,       nf4_f32,         quantize_q8_0,   gemm_q8_0_tiles,
                                 gemm_q4_0_tiles, gemm_int8_tiles, gemm_int4_tiles, gemm_nf4_tiles,
                                 nf4_bf16_gemm(), nf4_amx_gemm(),  nullptr,         nullptr};
  return &table;
}
}  // namespace moat::cpu::quant::detail

#else
namespace moat::cpu::quant::detail {
const dot_kernels* avx512_kernels() { return nullptr; }
}  // namespace moat::cpu::quant::detail
#endif

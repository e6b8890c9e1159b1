// The scalar path: the references of engine/quant, as a table.
#include "cpu/quant/kernel_tables.h"

namespace moat::cpu::quant::detail {

const dot_kernels* scalar_kernels() {
  static const dot_kernels table{
      isa::scalar,
      engine::quant::dot_q8_0_q8_0,
      engine::quant::dot_q4_0_q8_0,
      engine::quant::dot_int8_q8_0,
      engine::quant::dot_int4_q8_0,
      engine::quant::dot_nf4_f32,
      engine::quant::quantize_q8_0,
      nullptr,  // no tiles: the dispatch loops over the reference dots
      nullptr,
      nullptr,
      nullptr,
      nullptr,
      nullptr,  // no bf16 tiles
      nullptr,  // no AMX tiles
      nullptr,
      nullptr,
  };
  return &table;
}

}  // namespace moat::cpu::quant::detail

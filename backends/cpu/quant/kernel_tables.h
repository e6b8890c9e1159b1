// Internal: the per-ISA tables, each defined in its own translation unit (compiled with that
// ISA's flags). A table getter returns nullptr when the build could not compile the path.
#pragma once

#include "cpu/quant/kernels.h"

namespace moat::cpu::quant::detail {

const dot_kernels* scalar_kernels();
const dot_kernels* avx2_kernels();
const dot_kernels* avx512_kernels();
const dot_kernels* avx512_vnni_kernels();

}  // namespace moat::cpu::quant::detail

// Internal: the per-ISA tables, each defined in its own translation unit (compiled with that
// ISA's flags). A table getter returns nullptr when the build could not compile the path.
#pragma once

#include "cpu/quant/kernels.h"

namespace moat::cpu::quant::detail {

const dot_kernels* scalar_kernels();
const dot_kernels* avx2_kernels();
const dot_kernels* avx512_kernels();
const dot_kernels* avx512_vnni_kernels();

// A per-thread float buffer of at least n elements, valid until the thread's next call. It
// lives in dispatch.cpp (baseline ISA): a std::vector instantiated inside an ISA-specific file
// could emit weak out-of-line copies with that ISA's instructions that baseline callers link to.
float* thread_scratch(size_t n);
// A second, independent per-thread buffer (the tiles' weight scales of one row tile).
float* thread_scratch_weights(size_t n);

}  // namespace moat::cpu::quant::detail

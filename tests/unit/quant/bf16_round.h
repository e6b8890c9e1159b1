// The bf16 rounding the kernels' bf16 and AMX paths apply, for their tests' references.
//   float wb = moat::quant_test::to_bf16(w);   // w rounded to the nearest bf16, ties to even
#pragma once

#include <cstdint>
#include <cstring>

namespace moat::quant_test {

// Round to the nearest bf16, ties to even (what vcvtne2ps2bf16 does for finite values).
inline float to_bf16(float f) {
  uint32_t u = 0;
  std::memcpy(&u, &f, sizeof u);
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace moat::quant_test

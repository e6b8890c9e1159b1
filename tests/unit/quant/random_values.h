// Seeded normal(0, scale) test inputs for the quant tests: the same seed gives the same values
// in every test file.
//   auto w = moat::quant_test::random_values(rows * cols, 7);       // N(0, 1)
//   auto x = moat::quant_test::random_values(cols, 8, 0.05f);       // N(0, 0.05)
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace moat::quant_test {

inline std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace moat::quant_test

// Matrix-vector speed of every weight format on every kernel path this CPU has (single
// thread, min of N runs), as GB/s of weight bytes read. Built on request only:
//   cmake --build build --target moat_quant_bench && build/bin/moat_quant_bench [rows] [cols]
// (bench/ scripts should drive it; it never runs as a test.)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "cpu/quant/matmul.h"

using namespace moat::cpu::quant;

int main(int argc, char** argv) {
  const size_t rows = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 4096;
  const size_t cols = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 4096;
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> w(rows * cols), x(cols), y(rows);
  for (float& v : w) v = dist(rng);
  for (float& v : x) v = dist(rng);
  std::printf("%zu x %zu, best path %s\n%-12s %-10s %10s %10s\n", rows, cols, isa_name(best_isa()), "path", "format",
              "ms", "GB/s");
  for (weight_format f : {weight_format::q8_0, weight_format::int8, weight_format::q4_0, weight_format::int4_g64,
                          weight_format::nf4}) {
    const quantized_matrix m = quantize_matrix(f, w.data(), rows, cols);
    for (isa i : {isa::scalar, isa::avx2, isa::avx512, isa::avx512_vnni}) {
      const dot_kernels* k = kernels_for(i);
      if (k == nullptr) continue;
      std::vector<block_q8_0> xq(activation_blocks(f, cols, 1));
      double best = 1e30;
      for (int rep = 0; rep < (i == isa::scalar ? 3 : 20); ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        prepare_activations(*k, f, x.data(), 1, cols, xq.data());
        matmul_rows(*k, m.view(), x.data(), xq.data(), 1, y.data(), rows, 0, rows);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::printf("%-12s %-10s %10.3f %10.1f\n", isa_name(i), weight_format_name(f), best * 1e3,
                  static_cast<double>(weight_bytes(f, rows, cols)) / best / 1e9);
    }
  }
  return 0;
}

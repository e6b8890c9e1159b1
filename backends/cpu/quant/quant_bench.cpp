// Matrix-vector and matrix-matrix speed of every weight format on every kernel path this CPU
// has (single thread, best of N runs): GB/s of weight bytes read and GMAC/s, for each batch
// size, with the path's tiles ("tiles") and with one dot product per (row, activation row)
// ("dots", the fallback). Built on request only:
//   cmake --build build --target moat_quant_bench && build/bin/moat_quant_bench [rows] [cols] [batches]
//   build/bin/moat_quant_bench 2048 5632 1,8,32
// (bench/ scripts drive it; it never runs as a test.)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cpu/quant/matmul.h"

using namespace moat::cpu::quant;

int main(int argc, char** argv) {
  const size_t rows = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 4096;
  const size_t cols = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 4096;
  std::vector<size_t> batches;
  {
    std::stringstream ss(argc > 3 ? argv[3] : "1,8,32");
    std::string part;
    while (std::getline(ss, part, ',')) batches.push_back(std::strtoul(part.c_str(), nullptr, 10));
  }
  const size_t max_batch = *std::max_element(batches.begin(), batches.end());
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> w(rows * cols), x(max_batch * cols), y(max_batch * rows);
  for (float& v : w) v = dist(rng);
  for (float& v : x) v = dist(rng);
  std::printf("%zu x %zu, best path %s\n%-12s %-6s %-10s %5s %10s %10s %10s\n", rows, cols, isa_name(best_isa()), "path",
              "kind", "format", "batch", "ms", "GB/s", "GMAC/s");
  for (weight_format f : {weight_format::q8_0, weight_format::int8, weight_format::q4_0, weight_format::int4_g64,
                          weight_format::nf4}) {
    const quantized_matrix m = quantize_matrix(f, w.data(), rows, cols);
    for (isa i : {isa::scalar, isa::avx2, isa::avx512, isa::avx512_vnni}) {
      const dot_kernels* path = kernels_for(i);
      if (path == nullptr) continue;
      dot_kernels dots = *path;  // the same path without its tiles
      dots.gemm_q8_0 = nullptr;
      dots.gemm_q4_0 = nullptr;
      dots.gemm_int8 = nullptr;
      dots.gemm_int4 = nullptr;
      dots.gemm_nf4 = nullptr;
      const bool has_tiles = f == weight_format::nf4 ? path->gemm_nf4 != nullptr : path->gemm_q8_0 != nullptr;
      for (const dot_kernels* k : {path, static_cast<const dot_kernels*>(&dots)}) {
        if (k == &dots && !has_tiles) continue;  // identical to the line above
        for (size_t batch : batches) {
          std::vector<block_q8_0> xq(activation_blocks(f, cols, batch));
          double best = 1e30;
          for (int rep = 0; rep < (i == isa::scalar ? 2 : 10); ++rep) {
            const auto t0 = std::chrono::steady_clock::now();
            prepare_activations(*k, f, x.data(), batch, cols, xq.data());
            matmul_rows(*k, m.view(), x.data(), xq.data(), batch, y.data(), rows, 0, rows);
            best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          }
          std::printf("%-12s %-6s %-10s %5zu %10.3f %10.1f %10.1f\n", isa_name(i), k == &dots || !has_tiles ? "dots" : "tiles",
                      weight_format_name(f), batch, best * 1e3,
                      static_cast<double>(weight_bytes(f, rows, cols)) / best / 1e9,
                      static_cast<double>(rows * cols * batch) / best / 1e9);
        }
      }
    }
  }
  return 0;
}

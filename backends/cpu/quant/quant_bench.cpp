// Kernel speed of every weight format, built on request only (never a test):
//   cmake --build build --target moat_quant_bench
//
// One matrix, every path this CPU has, single thread, L1/L2/L3-warm (best of N runs): GB/s of
// weight bytes read and GMAC/s, per batch size, with the path's tiles ("tiles") and with one
// dot product per (row, activation row) ("dots", the fallback); for NF4 also without the AMX
// tiles ("bf16t") and without the bf16 and AMX ones ("f32t"), where the path has them:
//   build/bin/moat_quant_bench [rows] [cols] [batches] [--best]  e.g. 2048 5632 1,8,32
// (--best: only the path this CPU would use; --cpu-time: thread CPU time instead of wall time,
// steadier on a shared machine for cache-resident sizes).
//
// The decode shapes of TinyLlama-1.1B (2048x2048 q/o, 256x2048 k/v, 5632x2048 gate/up,
// 2048x5632 down, 32000x2048 lm_head), best path only, at 1 and 2 threads, each matrix
// repeated until the working set (--ws MiB, default 1024) is larger than the last-level
// cache, so every pass streams its weights from memory as a decode step does; beside each
// matvec line, "read": the same threads streaming the same bytes with a plain read loop (no
// arithmetic), the physical ceiling of a batch-1 step:
//   build/bin/moat_quant_bench --shapes [--threads 1,2] [--batches 1,8,32,64] [--formats int8,q4_0]
//                              [--ws 1024] [--reps 5] [--nf4-f32 (no bf16 or AMX NF4 tiles)]
// NF4 at batch >= 8 takes the AMX tiles where the CPU has them; MOAT_CPU_AMX=0 runs the same
// lines on the bf16 tiles.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cpu/quant/matmul.h"

using namespace moat::cpu::quant;

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// CPU time of the calling thread: on a shared machine, time the thread was not running does
// not count (for compute-bound, cache-resident measurements; not for memory streaming).
double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

std::vector<size_t> parse_list(const char* text) {
  std::vector<size_t> out;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) out.push_back(std::strtoul(part.c_str(), nullptr, 10));
  return out;
}

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// The original single-matrix, every-path table.
int one_matrix(size_t rows, size_t cols, const std::vector<size_t>& batches, bool best_only, bool cpu_time) {
  const size_t max_batch = *std::max_element(batches.begin(), batches.end());
  const std::vector<float> w = random_values(rows * cols, 1), x = random_values(max_batch * cols, 2);
  std::vector<float> y(max_batch * rows);
  std::printf("%zu x %zu, best path %s\n%-12s %-6s %-10s %5s %10s %10s %10s\n", rows, cols, isa_name(best_isa()), "path",
              "kind", "format", "batch", "ms", "GB/s", "GMAC/s");
  for (weight_format f : {weight_format::q8_0, weight_format::int8, weight_format::q4_0, weight_format::int4_g64,
                          weight_format::nf4}) {
    const quantized_matrix m = quantize_matrix(f, w.data(), rows, cols);
    for (isa i : {isa::scalar, isa::avx2, isa::avx512, isa::avx512_vnni}) {
      const dot_kernels* path = kernels_for(i);
      if (path == nullptr || (best_only && i != best_isa())) continue;
      dot_kernels dots = *path;  // the same path without its tiles
      dots.gemm_q8_0 = nullptr;
      dots.gemm_q4_0 = nullptr;
      dots.gemm_int8 = nullptr;
      dots.gemm_int4 = nullptr;
      dots.gemm_nf4 = nullptr;
      dots.gemm_nf4_bf16 = nullptr;
      dots.gemm_nf4_amx = nullptr;
      dots.gemm_q4_0_amx = nullptr;
      dots.gemm_int4_amx = nullptr;
      dot_kernels f32_tiles =
          *path;  // NF4 without the bf16 or AMX tiles ("f32t"), where the path has them
      f32_tiles.gemm_nf4_bf16 = nullptr;
      f32_tiles.gemm_nf4_amx = nullptr;
      dot_kernels bf16_tiles =
          *path;  // NF4 on the bf16 tiles ("bf16t"), where the path has AMX ones
      bf16_tiles.gemm_nf4_amx = nullptr;
      const bool has_tiles = f == weight_format::nf4 ? path->gemm_nf4 != nullptr : path->gemm_q8_0 != nullptr;
      const bool has_bf16 = f == weight_format::nf4 &&
                            (path->gemm_nf4_bf16 != nullptr || path->gemm_nf4_amx != nullptr);
      const bool has_amx = f == weight_format::nf4 && path->gemm_nf4_amx != nullptr &&
                           path->gemm_nf4_bf16 != nullptr;
      for (const dot_kernels* k :
           {path, static_cast<const dot_kernels*>(&bf16_tiles),
            static_cast<const dot_kernels*>(&f32_tiles), static_cast<const dot_kernels*>(&dots)}) {
        if (k == &dots && !has_tiles) continue;  // identical to the line above
        if (k == &f32_tiles && !has_bf16) continue;
        if (k == &bf16_tiles && !has_amx) continue;
        for (size_t batch : batches) {
          std::vector<block_q8_0> xq(activation_blocks(f, cols, batch));
          double best = 1e30;
          for (int rep = 0; rep < (i == isa::scalar ? 2 : 10); ++rep) {
            const auto t0 = clock_type::now();
            const double c0 = thread_seconds();
            prepare_activations(*k, f, x.data(), batch, cols, xq.data());
            matmul_rows(*k, m.view(), x.data(), xq.data(), batch, y.data(), rows, 0, rows);
            best = std::min(best, cpu_time ? thread_seconds() - c0 : seconds_since(t0));
          }
          std::printf("%-12s %-6s %-10s %5zu %10.3f %10.1f %10.1f\n", isa_name(i),
                      k == &dots || !has_tiles ? "dots"
                      : k == &f32_tiles        ? "f32t"
                      : k == &bf16_tiles       ? "bf16t"
                                               : "tiles",
                      weight_format_name(f), batch, best * 1e3,
                      static_cast<double>(weight_bytes(f, rows, cols)) / best / 1e9,
                      static_cast<double>(rows * cols * batch) / best / 1e9);
        }
      }
    }
  }
  return 0;
}

// Where read_bytes' sums go, so the compiler cannot drop the loads.
std::atomic<uint64_t> read_sink{0};

// Sum of n bytes as 64-bit words, 8 independent accumulators: the compiler's widest plain loads,
// no arithmetic to wait for.
uint64_t read_bytes(const uint8_t* p, size_t n) {
  uint64_t acc[8] = {};
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    for (int j = 0; j < 8; ++j) {
      uint64_t v;
      std::memcpy(&v, p + i + 8 * j, 8);
      acc[j] += v;
    }
  }
  for (; i < n; ++i) acc[0] += p[i];
  uint64_t s = 0;
  for (uint64_t a : acc) s += a;
  return s;
}

// `threads` threads run fn(thread, passes) together, started at once; returns the best
// seconds of `reps` timed passes (each pass: every thread calls fn once, the pass ends when the
// last one returns). Threads are created once per measurement, not per pass.
template <typename Fn>
double timed_passes(int threads, int reps, const Fn& fn) {
  std::atomic<int> arrived{0};
  std::atomic<int> go{-1};
  double best = 1e30;
  std::vector<std::thread> pool;
  auto body = [&](int t) {
    for (int rep = 0; rep <= reps; ++rep) {  // rep 0: warm-up
      while (go.load(std::memory_order_acquire) < rep) std::this_thread::yield();
      fn(t);
      arrived.fetch_add(1, std::memory_order_acq_rel);
    }
  };
  for (int t = 1; t < threads; ++t) pool.emplace_back(body, t);
  for (int rep = 0; rep <= reps; ++rep) {
    const auto t0 = clock_type::now();
    go.store(rep, std::memory_order_release);
    fn(0);
    arrived.fetch_add(1, std::memory_order_acq_rel);
    while (arrived.load(std::memory_order_acquire) < threads * (rep + 1)) std::this_thread::yield();
    if (rep > 0) best = std::min(best, seconds_since(t0));
  }
  for (auto& th : pool) th.join();
  return best;
}

// --nf4-f32: --shapes without the bf16 and AMX NF4 tiles (to compare on the same machine).
bool nf4_f32_only = false;

struct shape {
  const char* name;
  size_t rows, cols;
};

int shapes(const std::vector<size_t>& threads_list, const std::vector<size_t>& batches,
           const std::vector<weight_format>& formats, size_t ws_mib, int reps) {
  const shape all[] = {{"q/o 2048x2048", 2048, 2048},
                       {"k/v 256x2048", 256, 2048},
                       {"gate/up 5632x2048", 5632, 2048},
                       {"down 2048x5632", 2048, 5632},
                       {"lm_head 32000x2048", 32000, 2048}};
  dot_kernels k = kernels();
  if (nf4_f32_only) {
    k.gemm_nf4_bf16 = nullptr;
    k.gemm_nf4_amx = nullptr;
  }
  const size_t max_batch = *std::max_element(batches.begin(), batches.end());
  std::printf("best path %s, working set >= %zu MiB per line (weights streamed from memory)\n", isa_name(k.which), ws_mib);
  std::printf("%-20s %-10s %3s %5s %10s %10s %10s %12s\n", "shape", "format", "thr", "batch", "ms/matrix", "GB/s",
              "GMAC/s", "read GB/s");
  for (const shape& s : all) {
    const std::vector<float> w = random_values(s.rows * s.cols, 3), x = random_values(max_batch * s.cols, 4);
    for (weight_format f : formats) {
      const quantized_matrix one = quantize_matrix(f, w.data(), s.rows, s.cols);
      // Copies of the same matrix (values do not change the speed) until the set exceeds ws_mib.
      const size_t bytes = weight_bytes(f, s.rows, s.cols);
      const size_t copies = std::max<size_t>(1, ((ws_mib << 20) + bytes - 1) / bytes);
      std::vector<quantized_matrix> set(copies, one);
      std::vector<float> y(max_batch * s.rows);
      for (size_t threads : threads_list) {
        const int nt = static_cast<int>(threads);
        for (size_t batch : batches) {
          std::vector<block_q8_0> xq(activation_blocks(f, s.cols, batch));
          prepare_activations(k, f, x.data(), batch, s.cols, xq.data());
          // Each thread takes its contiguous share of every copy's rows (the engine's split).
          const double t = timed_passes(nt, reps, [&](int th) {
            const size_t r0 = s.rows * static_cast<size_t>(th) / threads;
            const size_t r1 = s.rows * static_cast<size_t>(th + 1) / threads;
            for (const quantized_matrix& m : set) matmul_rows(k, m.view(), x.data(), xq.data(), batch, y.data(), s.rows, r0, r1);
          });
          const double per = t / static_cast<double>(copies);
          std::printf("%-20s %-10s %3zu %5zu %10.3f %10.1f %10.1f", s.name, weight_format_name(f), threads, batch, per * 1e3,
                      static_cast<double>(bytes) / per / 1e9,
                      static_cast<double>(s.rows * s.cols * batch) / per / 1e9);
          if (batch == 1) {
            // The same bytes (codes; the scales are small) read by the same threads, nothing else.
            const double tr = timed_passes(nt, reps, [&](int th) {
              for (const quantized_matrix& m : set) {
                const size_t n = m.data.size();
                const size_t b0 = n * static_cast<size_t>(th) / threads, b1 = n * static_cast<size_t>(th + 1) / threads;
                read_sink += read_bytes(m.data.data() + b0, b1 - b0);
              }
            });
            size_t data_bytes = 0;
            for (const quantized_matrix& m : set) data_bytes += m.data.size();
            std::printf(" %12.1f", static_cast<double>(data_bytes) / tr / 1e9);
          }
          std::printf("\n");
          std::fflush(stdout);
        }
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool shape_mode = false;
  bool best_only = false;
  bool cpu_time = false;
  std::vector<size_t> threads{1, 2}, batches{1, 8, 32, 64};
  std::vector<weight_format> formats{weight_format::q8_0, weight_format::int8, weight_format::q4_0,
                                     weight_format::int4_g64, weight_format::nf4};
  size_t ws_mib = 1024;
  int reps = 5;
  std::vector<const char*> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--shapes") {
      shape_mode = true;
    } else if (a == "--nf4-f32") {
      nf4_f32_only = true;
    } else if (a == "--best") {
      best_only = true;
    } else if (a == "--cpu-time") {
      cpu_time = true;
    } else if (a == "--threads" && has_value) {
      threads = parse_list(argv[++i]);
    } else if (a == "--batches" && has_value) {
      batches = parse_list(argv[++i]);
    } else if (a == "--ws" && has_value) {
      ws_mib = std::strtoul(argv[++i], nullptr, 10);
    } else if (a == "--reps" && has_value) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--formats" && has_value) {
      formats.clear();
      std::stringstream ss(argv[++i]);
      std::string part;
      while (std::getline(ss, part, ',')) {
        const auto f = parse_weight_format(part);
        if (!f) {
          std::fprintf(stderr, "unknown format %s\n", part.c_str());
          return 2;
        }
        formats.push_back(*f);
      }
    } else if (a.rfind("--", 0) == 0) {
      std::fprintf(stderr, "unknown or incomplete option %s (see the top of quant_bench.cpp)\n", a.c_str());
      return 2;
    } else {
      positional.push_back(argv[i]);
    }
  }
  if (threads.empty() || batches.empty() || formats.empty()) return 2;
  if (shape_mode) return shapes(threads, batches, formats, ws_mib, reps);
  const size_t rows = positional.size() > 0 ? std::strtoul(positional[0], nullptr, 10) : 4096;
  const size_t cols = positional.size() > 1 ? std::strtoul(positional[1], nullptr, 10) : 4096;
  return one_matrix(rows, cols, positional.size() > 2 ? parse_list(positional[2]) : std::vector<size_t>{1, 8, 32}, best_only, cpu_time);
}

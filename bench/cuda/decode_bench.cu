// Decode throughput of the moat kernels on a synthetic model with the exact shape of
// Llama 3.1 8B (random weights made on the device), per weight format and batch size, next to
// the memory-bandwidth bound measured here with a large device-to-device copy.
//
//   moat_cuda_bench [--formats bf16,int8,int4,nf4] [--batches 1,8,64,256] [--ctx 512] [--steps 20]
//
// One decode step = for each of 32 layers: RMSNorm, q/k/v GEMV, RoPE, paged attention over
// `ctx` positions per sequence, o GEMV, residual, RMSNorm, gate/up GEMV, SwiGLU, down GEMV,
// residual; then the final norm and the LM head. KV writes are left out (a few KB per token).
// Every layer reads its own weights; all layers share one KV pool (same traffic, less memory).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/add.cuh"
#include "kernels/gemv.cuh"
#include "kernels/paged_attention.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/rope.cuh"
#include "kernels/swiglu.cuh"

namespace {

using namespace moat::kernels;

constexpr int64_t k_hidden = 4096, k_inter = 14336, k_vocab = 128256;
constexpr int32_t k_layers = 32, k_heads = 32, k_kv_heads = 8, k_head_dim = 128;

#define CK(x)                                                                               \
  do {                                                                                      \
    cudaError_t e_ = (x);                                                                   \
    if (e_ != cudaSuccess) {                                                                \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)

__device__ uint32_t hash(uint64_t i, uint32_t seed) {
  uint64_t x = i * 0x9e3779b97f4a7c15ull + seed;
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 29;
  return static_cast<uint32_t>(x);
}
__global__ void fill_bytes(uint8_t* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = static_cast<uint8_t>(hash(i, seed));
}
// Uniform in [lo, hi).
__global__ void fill_f32(float* p, size_t n, float lo, float hi, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = lo + (hi - lo) * (hash(i, seed) >> 8) * (1.0f / 16777216.0f);
}
__global__ void fill_bf16(uint16_t* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const float v = -0.05f + 0.1f * (hash(i, seed) >> 8) * (1.0f / 16777216.0f);
    p[i] = static_cast<uint16_t>(__float_as_uint(v) >> 16);
  }
}

template <class T>
T* dalloc(size_t n) {
  void* p = nullptr;
  CK(cudaMalloc(&p, n * sizeof(T)));
  return static_cast<T*>(p);
}

// A random weight matrix in `f`; returns its bytes.
size_t make_weight(gemv_weights& w, weight_format f, int64_t rows, int64_t cols, uint32_t seed) {
  w = gemv_weights{f, rows, cols};
  const size_t n = size_t(rows) * cols;
  size_t bytes = 0;
  switch (f) {
    case weight_format::bf16:
    case weight_format::f16: {
      auto* d = dalloc<uint16_t>(n);
      fill_bf16<<<1024, 256>>>(d, n, seed);
      w.data = d;
      bytes = n * 2;
      break;
    }
    case weight_format::int8: {
      auto* d = dalloc<uint8_t>(n);
      fill_bytes<<<1024, 256>>>(d, n, seed);
      auto* s = dalloc<float>(rows);
      fill_f32<<<64, 256>>>(s, rows, 1e-4f, 1e-3f, seed + 1);
      w.data = d;
      w.scales = s;
      bytes = n + rows * 4;
      break;
    }
    case weight_format::int4: {
      w.group = 64;
      const size_t rb = int4_row_bytes(cols, 64), ng = int4_row_groups(cols, 64);
      auto* d = dalloc<uint8_t>(rb * rows);
      fill_bytes<<<1024, 256>>>(d, rb * rows, seed);
      auto* s = dalloc<float>(ng * rows);
      fill_f32<<<256, 256>>>(s, ng * rows, 1e-4f, 1e-3f, seed + 1);
      w.data = d;
      w.scales = s;
      bytes = rb * rows + ng * rows * 4;
      break;
    }
    case weight_format::nf4: {
      const size_t blocks = (n + 63) / 64, nested = (blocks + 255) / 256;
      auto* d = dalloc<uint8_t>(n / 2);
      fill_bytes<<<1024, 256>>>(d, n / 2, seed);
      auto* codes = dalloc<uint8_t>(blocks);
      fill_bytes<<<256, 256>>>(codes, blocks, seed + 1);
      auto* a2 = dalloc<float>(nested);
      fill_f32<<<64, 256>>>(a2, nested, 1e-3f, 2e-3f, seed + 2);
      auto* map = dalloc<float>(256);
      fill_f32<<<1, 256>>>(map, 256, -1.0f, 1.0f, seed + 3);
      w.data = d;
      w.absmax_codes = codes;
      w.absmax2 = a2;
      w.absmax_map = map;
      w.absmax_offset = 0.01f;
      bytes = n / 2 + blocks + nested * 4;
      break;
    }
    case weight_format::f32:
      break;
  }
  CK(cudaGetLastError());
  return bytes;
}

struct layer {
  gemv_weights wq, wk, wv, wo, gate, up, down;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t a = 0;
  while (a <= s.size()) {
    const size_t b = s.find(',', a);
    out.push_back(s.substr(a, b == std::string::npos ? std::string::npos : b - a));
    if (b == std::string::npos) break;
    a = b + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string formats = "bf16,int8,int4,nf4", batches = "1,8,64,256";
  int ctx = 512, steps = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--formats") formats = argv[i + 1];
    else if (a == "--batches") batches = argv[i + 1];
    else if (a == "--ctx") ctx = std::atoi(argv[i + 1]);
    else if (a == "--steps") steps = std::atoi(argv[i + 1]);
  }
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d), %.1f GiB\n", prop.name, prop.major, prop.minor, prop.totalGlobalMem / 1073741824.0);

  // The bandwidth bound: a 4 GiB device-to-device copy reads and writes 8 GiB.
  {
    const size_t n = size_t(4) << 30;
    auto* a = dalloc<uint8_t>(n);
    auto* b = dalloc<uint8_t>(n);
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    CK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
    CK(cudaEventRecord(e0));
    for (int i = 0; i < 5; ++i) CK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice));
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    std::printf("bandwidth (D2D copy, read+write): %.0f GB/s\n", 5 * 2.0 * n / (ms * 1e-3) / 1e9);
    CK(cudaFree(a));
    CK(cudaFree(b));
  }
  std::printf("format  batch  ctx  weights_GB  step_ms  tok_s  weight_GB_s\n");
  for (const auto& fname : split(formats)) {
    weight_format f = fname == "int8" ? weight_format::int8
                      : fname == "int4" ? weight_format::int4
                      : fname == "nf4"  ? weight_format::nf4
                                        : weight_format::bf16;
    std::vector<layer> L(k_layers);
    size_t bytes = 0;
    uint32_t seed = 1;
    for (auto& l : L) {
      bytes += make_weight(l.wq, f, k_heads * k_head_dim, k_hidden, seed++);
      bytes += make_weight(l.wk, f, k_kv_heads * k_head_dim, k_hidden, seed++);
      bytes += make_weight(l.wv, f, k_kv_heads * k_head_dim, k_hidden, seed++);
      bytes += make_weight(l.wo, f, k_hidden, k_heads * k_head_dim, seed++);
      bytes += make_weight(l.gate, f, k_inter, k_hidden, seed++);
      bytes += make_weight(l.up, f, k_inter, k_hidden, seed++);
      bytes += make_weight(l.down, f, k_hidden, k_inter, seed++);
    }
    gemv_weights head;
    bytes += make_weight(head, f, k_vocab, k_hidden, seed++);
    auto* norm = dalloc<float>(k_hidden);
    fill_f32<<<16, 256>>>(norm, k_hidden, 0.9f, 1.1f, 7);
    auto* inv = dalloc<float>(k_head_dim / 2);
    fill_f32<<<1, 64>>>(inv, k_head_dim / 2, 1e-4f, 1.0f, 8);

    for (const auto& bs : split(batches)) {
      const int B = std::atoi(bs.c_str());
      const int bps = (ctx + 15) / 16;
      auto* x = dalloc<float>(size_t(B) * k_hidden);
      auto* xb = dalloc<float>(size_t(B) * k_hidden);
      auto* proj = dalloc<float>(size_t(B) * k_hidden);
      auto* q = dalloc<float>(size_t(B) * k_heads * k_head_dim);
      auto* att = dalloc<float>(size_t(B) * k_heads * k_head_dim);
      auto* k = dalloc<float>(size_t(B) * k_kv_heads * k_head_dim);
      auto* v = dalloc<float>(size_t(B) * k_kv_heads * k_head_dim);
      auto* h1 = dalloc<float>(size_t(B) * k_inter);
      auto* h3 = dalloc<float>(size_t(B) * k_inter);
      auto* logits = dalloc<float>(size_t(B) * k_vocab);
      const size_t pool = size_t(B) * bps * 16 * k_kv_heads * k_head_dim;
      auto* kp = dalloc<float>(pool);
      auto* vp = dalloc<float>(pool);
      fill_f32<<<1024, 256>>>(kp, pool, -1, 1, 9);
      fill_f32<<<1024, 256>>>(vp, pool, -1, 1, 10);
      fill_f32<<<1024, 256>>>(x, size_t(B) * k_hidden, -1, 1, 11);
      std::vector<int32_t> tables(size_t(B) * bps), lens(B, ctx), pos(B, ctx - 1);
      for (size_t i = 0; i < tables.size(); ++i) tables[i] = int32_t(i);
      auto* dt = dalloc<int32_t>(tables.size());
      auto* dl = dalloc<int32_t>(B);
      auto* dp = dalloc<int32_t>(B);
      CK(cudaMemcpy(dt, tables.data(), tables.size() * 4, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dl, lens.data(), B * 4, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dp, pos.data(), B * 4, cudaMemcpyHostToDevice));
      paged_attention_args a;
      a.q = q;
      a.k_pool = kp;
      a.v_pool = vp;
      a.block_tables = dt;
      a.seq_lens = dl;
      a.out = att;
      a.n_seq = B;
      a.n_heads = k_heads;
      a.n_kv_heads = k_kv_heads;
      a.head_dim = k_head_dim;
      a.block_size = 16;
      a.max_blocks = bps;
      a.scale = 1.0f / std::sqrt(float(k_head_dim));
      auto step = [&] {
        for (const auto& l : L) {
          CK(rmsnorm(x, norm, 1e-5f, B, k_hidden, xb, nullptr));
          CK(gemv(l.wq, xb, B, q, nullptr));
          CK(gemv(l.wk, xb, B, k, nullptr));
          CK(gemv(l.wv, xb, B, v, nullptr));
          CK(rope(q, dp, inv, B, k_heads, k_head_dim, rope_pairs::rotate_half, nullptr));
          CK(rope(k, dp, inv, B, k_kv_heads, k_head_dim, rope_pairs::rotate_half, nullptr));
          CK(paged_attention(a, nullptr));
          CK(gemv(l.wo, att, B, proj, nullptr));
          CK(add(x, proj, int64_t(B) * k_hidden, nullptr));
          CK(rmsnorm(x, norm, 1e-5f, B, k_hidden, xb, nullptr));
          CK(gemv(l.gate, xb, B, h1, nullptr));
          CK(gemv(l.up, xb, B, h3, nullptr));
          CK(swiglu(h1, h3, int64_t(B) * k_inter, nullptr));
          CK(gemv(l.down, h1, B, proj, nullptr));
          CK(add(x, proj, int64_t(B) * k_hidden, nullptr));
        }
        CK(rmsnorm(x, norm, 1e-5f, B, k_hidden, xb, nullptr));
        CK(gemv(head, xb, B, logits, nullptr));
      };
      step();
      CK(cudaDeviceSynchronize());
      cudaEvent_t e0, e1;
      CK(cudaEventCreate(&e0));
      CK(cudaEventCreate(&e1));
      CK(cudaEventRecord(e0));
      for (int s = 0; s < steps; ++s) step();
      CK(cudaEventRecord(e1));
      CK(cudaEventSynchronize(e1));
      float ms = 0;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      const double step_ms = ms / steps;
      std::printf("%-6s  %5d  %4d  %10.2f  %7.2f  %6.0f  %11.0f\n", fname.c_str(), B, ctx, bytes / 1e9, step_ms,
                  B / (step_ms * 1e-3), bytes / (step_ms * 1e-3) / 1e9);
      std::fflush(stdout);
      for (void* p : {(void*)x, (void*)xb, (void*)proj, (void*)q, (void*)att, (void*)k, (void*)v, (void*)h1, (void*)h3,
                      (void*)logits, (void*)kp, (void*)vp, (void*)dt, (void*)dl, (void*)dp})
        CK(cudaFree(p));
    }
    // Weights of this format stay allocated until exit: the H200 holds all four formats (~45 GB).
  }
  return 0;
}

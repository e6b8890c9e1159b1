// The device halves of the host logic tested on the CPU elsewhere: CUDA-graph capture and replay
// on a real stream (graph_cache_test has the bookkeeping), the cuBLASLt prefill GEMM against a
// double-precision reference, and NCCL with one rank (TP=1: the all-reduce is the identity,
// the all-gather a copy), and a KV swap out to pinned memory and back. Built wherever nvcc is;
// every test skips without a device.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cublaslt_gemm.h"
#include "cuda_graphs.h"
#include "cuda_memory.h"
#include "engine/model_error.h"
#include "kernels/add.cuh"
#include "kernels/convert.cuh"
#include "kv_swap.h"
#include "nccl_comm.h"

namespace moat::cuda {
namespace {

#define SKIP_WITHOUT_DEVICE()                                                                   \
  do {                                                                                          \
    int n_dev = 0;                                                                              \
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0) {                              \
      cudaGetLastError();                                                                       \
      GTEST_SKIP() << "no CUDA device: the device paths are compiled but not run on this machine"; \
    }                                                                                           \
  } while (0)

std::vector<float> download(const device_buffer<float>& b, size_t n) {
  std::vector<float> h(n);
  check(cudaMemcpy(h.data(), b.get(), n * sizeof(float), cudaMemcpyDeviceToHost), "download");
  return h;
}

TEST(CudaGraphs, CapturedStepReplaysOnARealStream) {
  SKIP_WITHOUT_DEVICE();
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
  const int64_t n = 1000;
  std::vector<float> ones(n, 1.0f), zeros(n, 0.0f);
  device_buffer<float> x(n), y(n);
  x.upload(zeros.data(), n, s);
  y.upload(ones.data(), n, s);
  {
    cuda_graph_stream gs(s);
    graph_cache cache(gs, graph_buckets::defaults(8), true);
    cache.set_layout({.table_width = 1, .epoch = 1});
    // The "decode step" adds y into x once per run; rows only pick the graph here.
    auto step = [&](int32_t) { check(kernels::add(x.get(), y.get(), n, s), "add"); };
    EXPECT_EQ(cache.run(3, step), step_mode::captured);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(cache.run(4, step), step_mode::replayed);
    check(cudaStreamSynchronize(s), "sync");
    const auto h = download(x, n);
    EXPECT_EQ(h[0], 5.0f);  // one launch after the capture, four replays
    EXPECT_EQ(h[n - 1], 5.0f);
  }
  cudaStreamDestroy(s);
}

TEST(CublasLt, PrefillGemmMatchesTheReference) {
  SKIP_WITHOUT_DEVICE();
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
  for (const bool bf16 : {false, true}) {
    const int32_t tokens = 37, out = 130, in = 264;  // odd sizes
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> dist(-1, 1);
    std::vector<float> xh(size_t(tokens) * in), wh(size_t(out) * in);
    for (auto& v : xh) v = dist(rng);
    for (auto& v : wh) v = dist(rng);
    device_buffer<float> xf(xh.size()), wf(wh.size()), y(size_t(tokens) * out);
    device_buffer<uint16_t> x16(xh.size()), w16(wh.size());
    xf.upload(xh.data(), xh.size(), s);
    wf.upload(wh.data(), wh.size(), s);
    check(kernels::f32_to_16(xf.get(), x16.get(), int64_t(xh.size()), bf16, s), "convert x");
    check(kernels::f32_to_16(wf.get(), w16.get(), int64_t(wh.size()), bf16, s), "convert w");
    check(cudaMemsetAsync(y.get(), 0xff, size_t(tokens) * out * sizeof(float), s), "poison y");  // NaN
    lt_gemm gemm;
    gemm.run(bf16 ? lt_type::bf16 : lt_type::f16, x16.get(), w16.get(), y.get(), tokens, out, in, s);
    check(cudaStreamSynchronize(s), "sync");
    const auto yh = download(y, size_t(tokens) * out);
    // The inputs were rounded to 16 bits: the tolerance is that rounding over `in` products.
    const double tol = (bf16 ? 8e-3 : 1e-3) * std::sqrt(double(in)) * 2;
    for (int32_t t = 0; t < tokens; ++t)
      for (int32_t o = 0; o < out; ++o) {
        double ref = 0;
        for (int32_t i = 0; i < in; ++i) ref += double(xh[size_t(t) * in + i]) * wh[size_t(o) * in + i];
        ASSERT_NEAR(yh[size_t(t) * out + o], ref, tol) << (bf16 ? "bf16" : "f16") << " t=" << t << " o=" << o;
      }
    EXPECT_EQ(gemm.cached_plans(), 1u);
  }
  cudaStreamDestroy(s);
}

TEST(Nccl, OneRankAllReduceIsTheIdentity) {
  SKIP_WITHOUT_DEVICE();
  check(cudaSetDevice(0), "cudaSetDevice");
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
  const size_t n = 333;
  std::vector<float> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = float(i) * 0.5f;
  device_buffer<float> d(n), gathered(n);
  d.upload(h.data(), n, s);
  try {
    nccl_group comm({0});
    ASSERT_EQ(comm.world(), 1);
    comm.all_reduce_sum(0, d.get(), n, s);
    comm.all_gather(0, d.get(), gathered.get(), n, s);
    check(cudaStreamSynchronize(s), "sync");
    EXPECT_EQ(download(d, n), h);
    EXPECT_EQ(download(gathered, n), h);
    comm.abort();
    EXPECT_THROW(comm.all_reduce_sum(0, d.get(), n, s), engine::model_error);
  } catch (const engine::model_error& e) {
    if (std::string(e.what()).find("has no NCCL") != std::string::npos) GTEST_SKIP() << e.what();
    throw;
  }
  EXPECT_THROW(nccl_group({0, 4096}), engine::model_error);
  cudaStreamDestroy(s);
}

TEST(KvSwapDevice, BlocksSurviveARoundTripThroughPinnedMemory) {
  SKIP_WITHOUT_DEVICE();
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
  const size_t block_floats = 16 * 2 * 8, bb = block_floats * sizeof(float);
  const int32_t device_blocks = 12, layers = 2;
  kv_block_manager m(device_blocks, 12, 16);
  ASSERT_TRUE(m.reserve(1, 16 * 3));
  ASSERT_TRUE(m.reserve(2, 16 * 4));
  ASSERT_TRUE(m.reserve(1, 16 * 5));  // interleaved with sequence 2's blocks
  std::vector<float> h(device_blocks * block_floats);
  for (size_t i = 0; i < h.size(); ++i) h[i] = float(i);
  std::vector<device_buffer<float>> k(layers);
  for (auto& pool : k) pool.upload(h.data(), h.size(), s);
  host_kv_pool host(layers, 12, bb);
  const std::vector<int32_t> before = m.table(1);
  const auto out = coalesce_copies(*m.swap_out(1));
  for (int32_t l = 0; l < layers; ++l) copy_runs(out, k[l].get(), host.k(l), bb, cudaMemcpyDeviceToHost, s);
  // Sequence 2 takes the freed blocks and overwrites them (poison).
  check(cudaMemsetAsync(k[0].get(), 0xff, h.size() * sizeof(float), s), "poison");
  const auto in = coalesce_copies(*m.swap_in(1));
  for (int32_t l = 0; l < layers; ++l) copy_runs(in, host.k(l), k[l].get(), bb, cudaMemcpyHostToDevice, s);
  check(cudaStreamSynchronize(s), "sync");
  const auto after = download(k[0], h.size());
  const std::vector<int32_t>& table = m.table(1);
  ASSERT_EQ(table.size(), before.size());
  for (size_t b = 0; b < table.size(); ++b)
    for (size_t i = 0; i < block_floats; ++i)
      ASSERT_EQ(after[table[b] * block_floats + i], h[before[b] * block_floats + i]) << "block " << b;
  cudaStreamDestroy(s);
}

}  // namespace
}  // namespace moat::cuda

// The CUDA model_runner (backends/cuda/cuda_runner.h): on a machine without a device it must
// refuse with a clear model_error (never crash); on a device it must match the CPU reference
// runner on the tinystories fixture (f32 weights: logits to float rounding, the same greedy
// tokens) and report greedy agreement for the quantized formats.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "cpu/cpu_runner.h"
#include "cuda_runner.h"

namespace moat::cuda {
namespace {

const std::filesystem::path k_fixture = std::filesystem::path(MOAT_FIXTURES_DIR) / "tinystories-656K-hf";

bool have_device() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

TEST(CudaRunner, RefusesClearlyWithoutADeviceOrWithABadOne) {
  if (!std::filesystem::exists(k_fixture)) GTEST_SKIP() << "fixture " << k_fixture << " is absent";
  auto model = std::make_shared<const engine::loaded_model>(engine::load_model(k_fixture));
  cuda_options o;
  o.kv_cache_mb = 16;
  if (have_device()) o.device = 999;  // on a GPU machine: a device that does not exist
  try {
    make_cuda_runner(model, o);
    FAIL() << "make_cuda_runner accepted device " << o.device;
  } catch (const engine::model_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("cuda: ", 0), 0u) << e.what();
    std::printf("refused as expected: %s\n", e.what());
  }
  if (have_device()) {
    o.device = 0;
    o.weights = "int3";
    EXPECT_THROW(make_cuda_runner(model, o), engine::model_error);
  }
}

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Prompt as one prefill item, then `steps` greedy decode steps; returns tokens and the logits.
std::vector<int32_t> greedy(engine::model_runner& r, const std::vector<int32_t>& prompt, int steps,
                            std::vector<std::vector<float>>* all) {
  const int32_t vocab = r.config().vocab_size;
  std::vector<float> logits(vocab);
  engine::forward_item first{0, prompt, 0, false};
  r.forward({&first, 1}, logits);
  std::vector<int32_t> out;
  for (int i = 0; i < steps; ++i) {
    if (all) all->push_back(logits);
    const int32_t next = argmax(logits);
    out.push_back(next);
    engine::forward_item step{0, {&out.back(), 1}, static_cast<int32_t>(prompt.size()) + i, false};
    r.forward({&step, 1}, logits);
  }
  return out;
}

TEST(CudaRunner, MatchesTheCpuReferenceOnTinystories) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device: the runner is built but not run on this machine";
  if (!std::filesystem::exists(k_fixture)) GTEST_SKIP() << "fixture " << k_fixture << " is absent";
  auto model = std::make_shared<const engine::loaded_model>(engine::load_model(k_fixture));
  cpu::cpu_options co;
  co.threads = 1;
  co.kv_cache_mb = 64;
  co.max_ctx = 256;
  co.max_slots = 2;
  co.reference = true;
  auto cpu_runner = cpu::make_cpu_runner(model, co);
  const std::vector<int32_t> prompt = {1, 415, 1012, 29, 280, 1300};
  std::vector<std::vector<float>> want, got;
  const auto want_tokens = greedy(*cpu_runner, prompt, 40, &want);

  cuda_options o;
  o.kv_cache_mb = 64;
  o.max_ctx = 256;
  auto gpu = make_cuda_runner(model, o);
  const auto got_tokens = greedy(*gpu, prompt, 40, &got);
  EXPECT_EQ(got_tokens, want_tokens);
  float worst = 0.0f;
  for (size_t i = 0; i < got.size(); ++i)
    for (size_t j = 0; j < got[i].size(); ++j) worst = std::max(worst, std::fabs(got[i][j] - want[i][j]));
  std::printf("f32 on the GPU: max |logit - CPU logit| = %.3g over %zu steps\n", worst, got.size());
  EXPECT_LT(worst, 1e-3f);

  // Two sequences batched in one call, one of them a copy of slot 0's prompt.
  gpu->copy_slot(0, 1, static_cast<int32_t>(prompt.size()));
  const int32_t a = want_tokens[0];
  std::vector<float> two(2 * model->config.vocab_size);
  engine::forward_item both[] = {{0, {&a, 1}, static_cast<int32_t>(prompt.size()), false},
                                 {1, {&a, 1}, static_cast<int32_t>(prompt.size()), false}};
  gpu->forward(both, two);
  for (int32_t j = 0; j < model->config.vocab_size; ++j)
    ASSERT_NEAR(two[j], two[model->config.vocab_size + j], 1e-5f) << j;
  EXPECT_NEAR(two[argmax(want[1])], want[1][argmax(want[1])], 1e-3f);

  for (const char* f : {"bf16", "int8", "int4", "nf4"}) {
    o.weights = f;
    auto q = make_cuda_runner(model, o);
    const auto qt = greedy(*q, prompt, 40, nullptr);
    int same = 0;
    while (same < 40 && qt[same] == want_tokens[same]) ++same;
    std::printf("%s on the GPU: first %d of 40 greedy tokens equal to f32 on the CPU\n", f, same);
    EXPECT_GT(same, 0) << f;
  }
}

}  // namespace
}  // namespace moat::cuda

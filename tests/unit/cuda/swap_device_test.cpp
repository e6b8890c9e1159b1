// KV swap on the device (issue 9): the cuda runner's pinned host pool (cuda_options::host_kv_mb)
// behind model_runner::swap_out / swap_in, and the engine's swap preemption over it. Built
// wherever nvcc is; each test skips with a message on a machine without a device. The same
// paths are proved on the CPU by tests/unit/cpu/swap_serving*_test.cpp (the scheduler) and
// kv_swap_test.cpp (the runs this runner copies).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cuda_runner.h"
#include "engine/serving.h"
#include "plugin_host.h"

namespace moat::cuda {
namespace {

const std::filesystem::path k_fixture =
    std::filesystem::path(MOAT_FIXTURES_DIR) / "tinystories-656K-hf";

std::string why_skip() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    cudaGetLastError();
    return "no CUDA device: the swap path is built but not run on this machine";
  }
  if (!std::filesystem::exists(k_fixture / "model.safetensors"))
    return "fixture " + k_fixture.string() + " is absent";
  return {};
}

int32_t argmax(const float* x, size_t n) {
  return static_cast<int32_t>(std::max_element(x, x + n) - x);
}

// Prefill `prompt` through `table`; returns the last row of logits.
std::vector<float> prefill(engine::model_runner& r, std::span<const int32_t> table,
                           const std::vector<int32_t>& prompt) {
  std::vector<float> logits(static_cast<size_t>(r.config().vocab_size));
  engine::forward_item it{.tokens = prompt, .start_pos = 0, .blocks = table};
  r.forward({&it, 1}, logits);
  return logits;
}

TEST(CudaSwap, BlocksRoundTripThroughPinnedMemoryIntoOtherBlocks) {
  if (const auto why = why_skip(); !why.empty()) GTEST_SKIP() << why;
  auto model = std::make_shared<const engine::loaded_model>(engine::load_model(k_fixture));
  const size_t v = static_cast<size_t>(model->config.vocab_size);
  cuda_options o;
  o.kv_cache_mb = 16;
  o.max_ctx = 256;
  auto plain = make_cuda_runner(model, o);
  EXPECT_FALSE(plain->can_swap());
  o.host_kv_mb = 1;
  auto r = make_cuda_runner(model, o);
  ASSERT_GT(r->host_blocks(), 4);

  std::vector<int32_t> prompt = {1};
  for (int k = 1; k < 30; ++k) prompt.push_back(3 + (k * 37) % 2000);
  const std::vector<int32_t> first = {0, 1, 2}, moved = {9, 5, 6};
  const auto last = prefill(*plain, first, prompt);
  const int32_t next = argmax(last.data(), v);
  std::vector<float> want(v), got(v);
  engine::forward_item step{.tokens = {&next, 1}, .start_pos = 30, .blocks = first};
  plain->forward({&step, 1}, want);

  prefill(*r, first, prompt);
  const engine::block_move out[] = {{.device = 0, .host = 3}, {.device = 1, .host = 4}};
  r->swap_out(out);
  std::vector<int32_t> other = {1};
  for (int k = 1; k < 40; ++k) other.push_back(5 + (k * 53) % 2000);
  prefill(*r, first, other);  // the freed blocks are reused
  const engine::block_move in[] = {{.device = 9, .host = 3}, {.device = 5, .host = 4}};
  r->swap_in(in);
  step.blocks = moved;
  r->forward({&step, 1}, got);
  float worst = 0.0f;
  for (size_t i = 0; i < v; ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
  EXPECT_LT(worst, 1e-5f);
  const engine::block_move bad[] = {{.device = 0, .host = r->host_blocks()}};
  EXPECT_THROW(r->swap_out(bad), engine::model_error);
}

engine::serving_plugin cuda_swap_plugin() {
  engine::serving_plugin p;
  p.name = "cuda";
  p.make_runner = [](std::shared_ptr<const engine::loaded_model> model,
                     const engine::serving_options& o) {
    cuda_options ro;
    ro.kv_cache_mb = static_cast<size_t>(o.kv_cache_mb);
    ro.max_ctx = o.ctx;
    ro.host_kv_mb = o.host_kv_mb;
    return make_cuda_runner(std::move(model), ro);
  };
  return p;
}

std::unique_ptr<engine::serving_backend> serve(const std::string& extra) {
  const std::string options =
      "{\"path\": \"" + k_fixture.string() + "\", \"ctx\": 512, \"max_batch\": 4" + extra + "}";
  moat_backend_config cfg{};
  cfg.struct_size = sizeof cfg;
  const std::string name = "tinystories";
  cfg.model_name = testing::str(name);
  cfg.options_json = testing::str(options);
  moat_error err{};
  err.struct_size = sizeof err;
  std::unique_ptr<engine::serving_backend> b;
  EXPECT_EQ(engine::serving_backend::create(&cfg, cuda_swap_plugin(), b, &err), MOAT_OK)
      << err.message;
  return b;
}

// Four greedy answers of 400 tokens at once (EOS biased away).
std::vector<std::vector<int32_t>> four_answers(engine::serving_backend& b) {
  std::vector<std::unique_ptr<testing::request_builder>> reqs;
  std::vector<std::unique_ptr<testing::collector>> out;
  for (int i = 0; i < 4; ++i) {
    reqs.push_back(std::make_unique<testing::request_builder>(static_cast<uint64_t>(i + 1),
                                                              MOAT_REQUEST_COMPLETION));
    std::vector<int32_t> prompt = {1};
    for (int k = 1; k < 20; ++k) prompt.push_back(3 + (k * 37 + i * 101) % 2000);
    reqs.back()->token_prompt(prompt);
    reqs.back()->req.sampling.max_tokens = 400;
    reqs.back()->biases.push_back({2, -100.0f});
    out.push_back(std::make_unique<testing::collector>());
    moat_error err{};
    err.struct_size = sizeof err;
    EXPECT_EQ(
        b.submit(&reqs.back()->build(), &testing::collector::on_event, out.back().get(), &err),
        MOAT_OK);
  }
  std::vector<std::vector<int32_t>> tokens;
  for (auto& c : out) {
    EXPECT_TRUE(c->wait());
    tokens.push_back(c->choices[0].tokens);
  }
  return tokens;
}

TEST(CudaSwap, SwapUnderPressureGivesTheTokensOfARoomyPool) {
  if (const auto why = why_skip(); !why.empty()) GTEST_SKIP() << why;
  auto roomy = serve(", \"kv_cache_mb\": 64");
  ASSERT_TRUE(roomy);
  const auto want = four_answers(*roomy);
  // 1 MiB holds two sequences of 512 positions (64 blocks); four answers of 420 need 108.
  auto tight = serve(", \"kv_cache_mb\": 1, \"host_kv_mb\": 1");
  ASSERT_TRUE(tight);
  EXPECT_EQ(four_answers(*tight), want);
  const auto s = tight->engine_scheduler().stats();
  std::printf("swap on the GPU: %llu swapped out (%llu blocks), %llu recomputed\n",
              static_cast<unsigned long long>(s.swap_outs),
              static_cast<unsigned long long>(s.blocks_swapped_out),
              static_cast<unsigned long long>(s.preemptions_recompute));
  EXPECT_GT(s.swap_outs, 0u);
  EXPECT_EQ(s.swap_ins, s.swap_outs);
  EXPECT_EQ(s.preemptions_recompute, 0u);
  EXPECT_EQ(s.host_blocks_used, 0u);
}

}  // namespace
}  // namespace moat::cuda

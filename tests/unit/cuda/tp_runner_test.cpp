// The tensor-parallel CUDA runner (backends/cuda/tp_runner.h) on the tinystories fixture:
// without a device it refuses clearly; on one GPU, TP=1 through NCCL must give the single-GPU
// runner's logits and greedy tokens, also with decode steps as CUDA graphs (a batch of 3 padded
// to the bucket of 4); on two GPUs (8 heads, 4 kv heads divide by 2), TP=2 the same. Built
// wherever nvcc is; skips without a device or the fixture.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "cuda_runner.h"
#include "tp_runner.h"

namespace moat::cuda {
namespace {

const std::filesystem::path k_fixture = std::filesystem::path(MOAT_FIXTURES_DIR) / "tinystories-656K-hf";

int devices() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::vector<int32_t> greedy(engine::model_runner& r, const std::vector<int32_t>& prompt, int steps,
                            std::vector<std::vector<float>>& all) {
  const int32_t vocab = r.config().vocab_size;
  std::vector<float> logits(vocab);
  engine::forward_item first{0, prompt, 0, false};
  r.forward({&first, 1}, logits);
  std::vector<int32_t> out;
  for (int i = 0; i < steps; ++i) {
    all.push_back(logits);
    out.push_back(static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    engine::forward_item step{0, {&out.back(), 1}, static_cast<int32_t>(prompt.size()) + i, false};
    r.forward({&step, 1}, logits);
  }
  return out;
}

TEST(TpRunner, RefusesClearly) {
  if (!std::filesystem::exists(k_fixture)) GTEST_SKIP() << "fixture " << k_fixture << " is absent";
  auto model = std::make_shared<const engine::loaded_model>(engine::load_model(k_fixture));
  tp_runner_options o;
  o.kv_cache_mb = 16;
  o.devices = devices() > 0 ? std::vector<int32_t>{0, 0, 0} : std::vector<int32_t>{0};  // 3 does not divide 8 heads
  try {
    make_tp_runner(model, o);
    FAIL() << "make_tp_runner accepted " << o.devices.size() << " ranks";
  } catch (const engine::model_error& e) {
    std::printf("refused as expected: %s\n", e.what());
    EXPECT_FALSE(std::string(e.what()).empty());
  }
}

void compare(int world) {
  auto model = std::make_shared<const engine::loaded_model>(engine::load_model(k_fixture));
  cuda_options so;
  so.kv_cache_mb = 64;
  so.max_ctx = 256;
  so.max_slots = 2;
  auto single = make_cuda_runner(model, so);
  tp_runner_options to;
  to.kv_cache_mb = 64;
  to.max_ctx = 256;
  to.max_slots = 2;
  to.devices.clear();
  for (int r = 0; r < world; ++r) to.devices.push_back(r);
  auto tp = make_tp_runner(model, to);
  const std::vector<int32_t> prompt = {1, 415, 1012, 29, 280, 1300};
  std::vector<std::vector<float>> want, got;
  EXPECT_EQ(greedy(*tp, prompt, 24, got), greedy(*single, prompt, 24, want)) << "TP=" << world;
  for (size_t s = 0; s < want.size(); ++s)
    for (size_t i = 0; i < want[s].size(); ++i)
      ASSERT_NEAR(got[s][i], want[s][i], 1e-3f) << "TP=" << world << " step " << s << " logit " << i;
}

TEST(TpRunner, Tp1ThroughNcclMatchesTheSingleGpuRunner) {
  if (devices() < 1) GTEST_SKIP() << "no CUDA device: the tensor-parallel runner is built but not run here";
  if (!std::filesystem::exists(k_fixture)) GTEST_SKIP() << "fixture " << k_fixture << " is absent";
  try {
    compare(1);
  } catch (const engine::model_error& e) {
    if (std::string(e.what()).find("has no NCCL") != std::string::npos) GTEST_SKIP() << e.what();
    throw;
  }
}

// Three sequences decoded together (3 rows padded to the graph bucket of 4), graphs on.
void compare_batched_decode_with_graphs() {
  auto model = std::make_shared<const engine::loaded_model>(engine::load_model(k_fixture));
  cuda_options so;
  so.kv_cache_mb = 64;
  so.max_ctx = 128;
  so.max_slots = 4;
  auto single = make_cuda_runner(model, so);
  tp_runner_options to;
  to.kv_cache_mb = 64;
  to.max_ctx = 128;
  to.max_slots = 4;
  to.cuda_graphs = true;
  to.graph_max_batch = 8;
  auto tp = make_tp_runner(model, to);
  const int32_t vocab = model->config.vocab_size;
  const std::vector<std::vector<int32_t>> prompts = {{1, 415, 1012}, {1, 29, 280, 1300, 7}, {1, 88}};
  std::vector<int32_t> len(3);
  std::vector<int32_t> last(3);
  for (int32_t i = 0; i < 3; ++i) {
    std::vector<float> a(vocab), b(vocab);
    engine::forward_item it{i, prompts[i], 0, false};
    single->forward({&it, 1}, a);
    tp->forward({&it, 1}, b);
    last[i] = static_cast<int32_t>(std::max_element(a.begin(), a.end()) - a.begin());
    len[i] = static_cast<int32_t>(prompts[i].size());
  }
  for (int step = 0; step < 12; ++step) {
    std::vector<engine::forward_item> items;
    for (int32_t i = 0; i < 3; ++i) items.push_back({i, {&last[i], 1}, len[i], false});
    std::vector<float> a(3 * static_cast<size_t>(vocab)), b(3 * static_cast<size_t>(vocab), NAN);
    single->forward(items, a);
    tp->forward(items, b);
    for (size_t k = 0; k < a.size(); ++k) ASSERT_NEAR(b[k], a[k], 1e-3f) << "step " << step << " value " << k;
    for (int32_t i = 0; i < 3; ++i) {
      last[i] = static_cast<int32_t>(std::max_element(a.begin() + i * vocab, a.begin() + (i + 1) * vocab) -
                                     (a.begin() + i * vocab));
      ++len[i];
    }
  }
}

TEST(TpRunner, DecodeGraphsMatchTheSingleGpuRunner) {
  if (devices() < 1) GTEST_SKIP() << "no CUDA device: the decode graphs are built but not run here";
  if (!std::filesystem::exists(k_fixture)) GTEST_SKIP() << "fixture " << k_fixture << " is absent";
  try {
    compare_batched_decode_with_graphs();
  } catch (const engine::model_error& e) {
    if (std::string(e.what()).find("has no NCCL") != std::string::npos) GTEST_SKIP() << e.what();
    throw;
  }
}

TEST(TpRunner, Tp2MatchesTheSingleGpuRunner) {
  if (devices() < 2) GTEST_SKIP() << "fewer than 2 CUDA devices";
  if (!std::filesystem::exists(k_fixture)) GTEST_SKIP() << "fixture " << k_fixture << " is absent";
  compare(2);
}

}  // namespace
}  // namespace moat::cuda

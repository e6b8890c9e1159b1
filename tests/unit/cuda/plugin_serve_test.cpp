// libmoat_cuda.so serving the tinystories-656K fixture through its C ABI (engine/serving.h over
// make_cuda_runner): greedy output against the fixture's reference generation, tokenize, stats
// and the metrics text (engine KV families + GPU families). Skips with a message without a GPU
// or the fixture.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <simdjson.h>

#include "plugin_host.h"

namespace moat::testing {
namespace {

const std::string fixture_dir =
    std::string(std::getenv("MOAT_FIXTURES_DIR") ? std::getenv("MOAT_FIXTURES_DIR") : MOAT_FIXTURES_DIR) +
    "/tinystories-656K-hf";
const std::string plugin_path = MOAT_BINARY_DIR "/lib/moat/libmoat_cuda.so";

class cuda_plugin_serve : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(fixture_dir + "/model.safetensors"))
      GTEST_SKIP() << "fixture missing: " << fixture_dir << " (see ../shared/fixtures/README.md)";
    lib_ = std::make_unique<plugin>(plugin_path);
    ASSERT_NE(lib_->api, nullptr) << "cannot load " << plugin_path;
  }
  void TearDown() override {
    if (b_) lib_->api->destroy(b_);
  }

  // Creates the instance; skips when the machine has no GPU.
  void create(const std::string& extra = "") {
    const std::string options = "{\"path\": \"" + fixture_dir + "\", \"ctx\": 256, \"max_batch\": 8, "
                                "\"kv_cache_mb\": 64" + extra + "}";
    const std::string name = "tinystories";
    moat_backend_config cfg{};
    cfg.struct_size = sizeof cfg;
    cfg.model_name = str(name);
    cfg.options_json = str(options);
    moat_error err{};
    err.struct_size = sizeof err;
    const moat_status st = lib_->api->create(&cfg, &b_, &err);
    if (st == MOAT_ERR_UNAVAILABLE) GTEST_SKIP() << "no GPU: " << err.message;
    ASSERT_EQ(st, MOAT_OK) << err.message;
    ASSERT_NE(b_, nullptr);
  }

  std::unique_ptr<plugin> lib_;
  moat_backend* b_ = nullptr;
};

std::vector<int32_t> reference_greedy_ids() {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load(fixture_dir + "/expected_greedy.json");
  std::vector<int32_t> ids;
  for (auto v : doc["ids"].get_array()) ids.push_back(static_cast<int32_t>(int64_t(v)));
  return ids;
}

TEST_F(cuda_plugin_serve, greedy_from_bos_matches_the_reference_generation) {
  create();
  if (IsSkipped()) return;
  moat_capabilities caps{};
  caps.struct_size = sizeof caps;
  ASSERT_EQ(lib_->api->capabilities(b_, &caps), MOAT_OK);
  EXPECT_EQ(caps.max_context, 256u);

  request_builder rb(1, MOAT_REQUEST_COMPLETION);
  rb.token_prompt({1});
  rb.req.sampling.max_tokens = 64;
  collector c;
  moat_error err{};
  err.struct_size = sizeof err;
  ASSERT_EQ(lib_->api->submit(b_, &rb.build(), &collector::on_event, &c, &err), MOAT_OK) << err.message;
  ASSERT_TRUE(c.wait());
  ASSERT_EQ(c.error, MOAT_OK) << c.error_message;
  EXPECT_EQ(c.choices[0].tokens, reference_greedy_ids());
  EXPECT_EQ(c.usage.completion_tokens, 64u);
}

TEST_F(cuda_plugin_serve, tokenize_stats_and_metrics_answer) {
  create();
  if (IsSkipped()) return;
  moat_tokenize_request tr{};
  tr.struct_size = sizeof tr;
  const std::string text = "Once upon a time";
  tr.text = str(text);
  tr.add_special_tokens = 1;
  std::vector<int32_t> ids;
  moat_error err{};
  err.struct_size = sizeof err;
  ASSERT_EQ(lib_->api->tokenize(
                b_, &tr,
                [](void* u, const int32_t* t, size_t n) { static_cast<std::vector<int32_t>*>(u)->assign(t, t + n); },
                &ids, &err),
            MOAT_OK)
      << err.message;
  EXPECT_GT(ids.size(), 1u);

  moat_stats stats{};
  stats.struct_size = sizeof stats;
  ASSERT_EQ(lib_->api->stats(b_, &stats), MOAT_OK);
  EXPECT_EQ(stats.requests_running, 0u);

  std::string metrics;
  ASSERT_EQ(lib_->api->metrics(
                b_, [](void* u, moat_str s) { static_cast<std::string*>(u)->append(s.data, s.size); }, &metrics),
            MOAT_OK);
  EXPECT_NE(metrics.find("moat_kv_blocks_total "), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("moat_gpu_kv_blocks_total{pool=\"device\"}"), std::string::npos) << metrics;
}

TEST_F(cuda_plugin_serve, options_the_device_runner_cannot_honour_fail_by_name) {
  const std::string options = "{\"path\": \"" + fixture_dir + "\", \"kv_dtype\": \"int8\"}";
  const std::string name = "tinystories";
  moat_backend_config cfg{};
  cfg.struct_size = sizeof cfg;
  cfg.model_name = str(name);
  cfg.options_json = str(options);
  moat_error err{};
  err.struct_size = sizeof err;
  const moat_status st = lib_->api->create(&cfg, &b_, &err);
  if (st == MOAT_ERR_UNAVAILABLE) GTEST_SKIP() << "no GPU: " << err.message;
  EXPECT_NE(st, MOAT_OK);
  EXPECT_NE(std::string(err.message).find("options.kv_dtype"), std::string::npos) << err.message;
}

}  // namespace
}  // namespace moat::testing

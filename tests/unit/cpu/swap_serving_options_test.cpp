// The serving glue with swap preemption (engine/serving.h): the shared `host_kv_mb` option
// reaches the runner factory, a small pool serving four long answers swaps instead of
// recomputing and gives the tokens of an unconstrained pool, and metrics_text() reports the
// swaps. The factory here is the cpu plugin's with host_kv_mb passed on, so this runs without
// libmoat_cpu.so (the plugin's own line is the lead's: see the report of issue 9's swap work).
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "cpu/cpu_runner.h"
#include "engine/serving.h"
#include "plugin_host.h"

namespace moat::testing {
namespace {

const std::string fixture_dir = std::string(MOAT_FIXTURES_DIR) + "/tinystories-656K-hf";

engine::serving_plugin swap_plugin() {
  engine::serving_plugin p;
  p.name = "cpu";
  p.make_runner = [](std::shared_ptr<const engine::loaded_model> model,
                     const engine::serving_options& o) {
    cpu::cpu_options ro;
    ro.threads = o.threads;
    ro.kv_cache_mb = static_cast<size_t>(o.kv_cache_mb);
    ro.max_ctx = o.ctx;
    ro.kv_block_size = o.kv_block_size;
    ro.host_kv_mb = static_cast<size_t>(o.host_kv_mb);
    return cpu::make_cpu_runner(std::move(model), ro);
  };
  return p;
}

class swap_serving_options : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(fixture_dir + "/model.safetensors"))
      GTEST_SKIP() << "fixture missing: " << fixture_dir << " (see ../shared/fixtures/README.md)";
  }
  std::unique_ptr<engine::serving_backend> create(const std::string& extra,
                                                  moat_error* err_out = nullptr) {
    const std::string options = "{\"path\": \"" + fixture_dir +
                                "\", \"ctx\": 512, \"max_batch\": 4, \"threads\": 2" + extra + "}";
    moat_backend_config cfg{};
    cfg.struct_size = sizeof cfg;
    const std::string name = "tinystories";
    cfg.model_name = str(name);
    cfg.options_json = str(options);
    moat_error err{};
    err.struct_size = sizeof err;
    std::unique_ptr<engine::serving_backend> b;
    engine::serving_backend::create(&cfg, swap_plugin(), b, &err);
    if (err_out) *err_out = err;
    return b;
  }
  // Four greedy answers of 400 tokens (EOS biased away, so every one runs that long) at once.
  std::vector<std::vector<int32_t>> four_answers(engine::serving_backend& b) {
    std::vector<std::unique_ptr<request_builder>> reqs;
    std::vector<std::unique_ptr<collector>> out;
    for (int i = 0; i < 4; ++i) {
      reqs.push_back(
          std::make_unique<request_builder>(static_cast<uint64_t>(i + 1), MOAT_REQUEST_COMPLETION));
      std::vector<int32_t> prompt = {1};
      for (int k = 1; k < 20; ++k) prompt.push_back(3 + (k * 37 + i * 101) % 2000);
      reqs.back()->token_prompt(prompt);
      reqs.back()->req.sampling.max_tokens = 400;
      reqs.back()->biases.push_back({2, -100.0f});
      out.push_back(std::make_unique<collector>());
      moat_error err{};
      err.struct_size = sizeof err;
      EXPECT_EQ(b.submit(&reqs.back()->build(), &collector::on_event, out.back().get(), &err),
                MOAT_OK);
    }
    std::vector<std::vector<int32_t>> tokens;
    for (auto& c : out) {
      EXPECT_TRUE(c->wait());
      EXPECT_EQ(c->error, MOAT_OK) << c->error_message;
      tokens.push_back(c->choices[0].tokens);
    }
    return tokens;
  }
};

// The value of one metric line ("name value"), or -1.
long long metric(const std::string& text, const std::string& name) {
  const auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stoll(text.substr(at + name.size() + 2));
}

TEST_F(swap_serving_options, host_kv_mb_swaps_under_pressure_and_metrics_show_it) {
  auto roomy = create(", \"kv_cache_mb\": 16");
  ASSERT_TRUE(roomy);
  const auto want = four_answers(*roomy);
  ASSERT_EQ(want[0].size(), 400u);
  // 1 MiB of KV at 1 KiB per token: 64 blocks of 16, two answers of 420 positions (27 blocks).
  auto tight = create(", \"kv_cache_mb\": 1, \"host_kv_mb\": 1");
  ASSERT_TRUE(tight);
  EXPECT_EQ(tight->options().host_kv_mb, 1);
  EXPECT_EQ(four_answers(*tight), want);
  const auto s = tight->engine_scheduler().stats();
  EXPECT_GT(s.swap_outs, 0u);
  EXPECT_EQ(s.preemptions_recompute, 0u);
  const std::string text = tight->metrics_text();
  EXPECT_EQ(metric(text, "moat:kv_swap_out_total"), static_cast<long long>(s.swap_outs)) << text;
  EXPECT_EQ(metric(text, "moat:kv_swap_in_total"), static_cast<long long>(s.swap_ins));
  EXPECT_GT(metric(text, "moat:kv_swap_out_blocks_total"), 0);
  EXPECT_EQ(metric(text, "moat:num_preemptions_total"), static_cast<long long>(s.preemptions));
  EXPECT_EQ(metric(text, "moat_kv_host_blocks_total"), 64);
  EXPECT_EQ(metric(roomy->metrics_text(), "moat_kv_host_blocks_total"), 0);
}

TEST_F(swap_serving_options, a_bad_host_kv_mb_is_refused_by_name) {
  moat_error err{};
  EXPECT_FALSE(create(", \"host_kv_mb\": -1", &err));
  EXPECT_NE(std::string(err.message).find("host_kv_mb"), std::string::npos) << err.message;
  EXPECT_FALSE(create(", \"host_kv_mb\": \"lots\"", &err));
  EXPECT_NE(std::string(err.message).find("host_kv_mb"), std::string::npos) << err.message;
}

}  // namespace
}  // namespace moat::testing

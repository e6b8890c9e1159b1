// libmoat_cpu.so's paged-KV options and the request's cache_salt, through the C ABI with the
// tinystories-656K fixture: the options are accepted and refused by name, block size, prefix
// caching and salts never change greedy tokens, int8 KV serves, a non-string cache_salt is the
// client's error, kv_cache_usage falls back to 0 when the requests are done, and metrics()
// counts prefix-cache queries and hits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "plugin_host.h"

namespace moat::testing {
namespace {

const std::string fixture_dir = std::string(MOAT_FIXTURES_DIR) + "/tinystories-656K-hf";
const std::string plugin_path = MOAT_BINARY_DIR "/lib/moat/libmoat_cpu.so";

class cpu_plugin_kv : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(fixture_dir + "/model.safetensors"))
      GTEST_SKIP() << "fixture missing: " << fixture_dir << " (see ../shared/fixtures/README.md)";
    if (!std::filesystem::exists(plugin_path)) GTEST_SKIP() << "plugin not built: " << plugin_path;
    lib_ = std::make_unique<plugin>(plugin_path);
    ASSERT_NE(lib_->api, nullptr) << "cannot load " << plugin_path;
  }
  void TearDown() override {
    for (auto* b : instances_) lib_->api->destroy(b);
  }
  moat_backend* create(const std::string& extra, moat_error* err_out = nullptr) {
    const std::string options = "{\"path\": \"" + fixture_dir + "\", \"ctx\": 256, \"max_batch\": 4, \"threads\": 2" + extra + "}";
    moat_backend_config cfg{};
    cfg.struct_size = sizeof cfg;
    std::string name = "tinystories";
    cfg.model_name = str(name);
    cfg.options_json = str(options);
    moat_error err{};
    err.struct_size = sizeof err;
    moat_backend* b = nullptr;
    const moat_status st = lib_->api->create(&cfg, &b, &err);
    if (err_out) *err_out = err;
    if (st != MOAT_OK) return nullptr;
    instances_.push_back(b);
    return b;
  }
  // Greedy completion of a fixed story opening; returns its tokens (empty on any error).
  std::vector<int32_t> complete(moat_backend* b, const std::string& body_json = "", moat_status* status = nullptr) {
    request_builder rb(++id_, MOAT_REQUEST_COMPLETION);
    rb.text_prompt("Once upon a time, there was a little girl named Lily. She loved to play outside in the park "
                   "with her friends. One day, she found a big red ball under a tree and ran to show her mom.");
    rb.req.sampling.max_tokens = 24;
    rb.req.body_json = str(body_json);
    const moat_request& req = rb.build();
    collector c;
    moat_error err{};
    err.struct_size = sizeof err;
    const moat_status st = lib_->api->submit(b, &req, &collector::on_event, &c, &err);
    if (status) *status = st;
    if (st != MOAT_OK || !c.wait() || c.error != MOAT_OK) return {};
    return c.choices[0].tokens;
  }

  std::unique_ptr<plugin> lib_;
  std::vector<moat_backend*> instances_;
  uint64_t id_ = 0;
};

TEST_F(cpu_plugin_kv, block_size_prefix_caching_and_salts_never_change_greedy_tokens) {
  auto* plain = create("");
  ASSERT_NE(plain, nullptr);
  const auto want = complete(plain);
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(complete(plain), want);  // the second run is served from the prefix cache
  EXPECT_EQ(complete(plain, R"({"cache_salt": "team-a"})"), want);
  EXPECT_EQ(complete(plain, R"({"cache_salt": null})"), want);
  for (const char* extra : {R"(, "kv_block_size": 1)", R"(, "kv_block_size": 256, "prefix_caching": false)",
                            R"(, "kv_block_size": 7, "kv_dtype": "f32")"}) {
    moat_error err{};
    auto* b = create(extra, &err);
    ASSERT_NE(b, nullptr) << extra << ": " << err.message;
    EXPECT_EQ(complete(b), want) << extra;
  }
}

TEST_F(cpu_plugin_kv, int8_kv_serves) {
  moat_error err{};
  auto* b = create(R"(, "kv_dtype": "int8")", &err);
  ASSERT_NE(b, nullptr) << err.message;
  auto* f = create("");
  ASSERT_NE(f, nullptr);
  const auto got = complete(b), want = complete(f);
  ASSERT_FALSE(got.empty());
  // Greedy over int8 KV starts like f32 (a near tie later may send it its own way).
  EXPECT_EQ(std::vector<int32_t>(got.begin(), got.begin() + 3), std::vector<int32_t>(want.begin(), want.begin() + 3));
  std::printf("[ int8 KV ] %zu tokens, %zu equal to f32's before the first difference\n", got.size(),
              static_cast<size_t>(std::mismatch(got.begin(), got.end(), want.begin()).first - got.begin()));
}

TEST_F(cpu_plugin_kv, bad_kv_options_fail_create_naming_the_key) {
  for (auto [extra, key] : {std::pair{R"(, "kv_block_size": 0)", "kv_block_size"},
                            std::pair{R"(, "kv_dtype": "fp8")", "kv_dtype"},
                            std::pair{R"(, "prefix_caching": "yes")", "prefix_caching"},
                            std::pair{R"(, "kv_cache_mb": 1, "kv_block_size": 65536)", "kv_cache_mb"}}) {
    moat_error err{};
    EXPECT_EQ(create(extra, &err), nullptr) << extra;
    EXPECT_NE(std::string(err.message).find(key), std::string::npos) << extra << ": " << err.message;
  }
}

TEST_F(cpu_plugin_kv, a_cache_salt_that_is_not_a_string_is_the_clients_error) {
  auto* b = create("");
  ASSERT_NE(b, nullptr);
  moat_status st = MOAT_OK;
  EXPECT_TRUE(complete(b, R"({"cache_salt": 42})", &st).empty());
  EXPECT_EQ(st, MOAT_ERR_INVALID_ARGUMENT);
}

TEST_F(cpu_plugin_kv, kv_cache_usage_returns_to_zero) {
  auto* b = create("");
  ASSERT_NE(b, nullptr);
  ASSERT_FALSE(complete(b).empty());
  moat_stats s{};
  s.struct_size = sizeof s;
  ASSERT_EQ(lib_->api->stats(b, &s), MOAT_OK);
  EXPECT_EQ(s.kv_cache_usage, 0.0);  // its blocks stay cached, but unreferenced blocks are free
  EXPECT_EQ(s.requests_running, 0u);
}

// The metrics() slot: the prefix cache's counters (tokens) and the pool's blocks.
TEST_F(cpu_plugin_kv, metrics_count_prefix_cache_queries_and_hits) {
  ASSERT_GE(lib_->api->struct_size, offsetof(moat_backend_api, metrics) + sizeof(lib_->api->metrics));
  ASSERT_NE(lib_->api->metrics, nullptr);
  auto* b = create("");
  ASSERT_NE(b, nullptr);
  auto scrape = [&] {
    std::string text;
    auto append = [](void* user, moat_str t) { static_cast<std::string*>(user)->append(t.data, t.size); };
    EXPECT_EQ(lib_->api->metrics(b, append, &text), MOAT_OK);
    return text;
  };
  auto value = [](const std::string& text, const std::string& name) {
    const auto at = text.find("\n" + name + " ");
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + name.size() + 2));
  };
  ASSERT_FALSE(complete(b).empty());
  const std::string first = scrape();
  EXPECT_NE(first.find("# TYPE moat:prefix_cache_hits_total counter"), std::string::npos) << first;
  const double queries = value(first, "moat:prefix_cache_queries_total");
  EXPECT_GT(queries, 0);
  EXPECT_EQ(value(first, "moat:prefix_cache_hits_total"), 0);
  EXPECT_GT(value(first, "moat_kv_blocks_total"), 0);
  ASSERT_FALSE(complete(b).empty());  // the same prompt again: its full blocks are cached
  const std::string second = scrape();
  EXPECT_EQ(value(second, "moat:prefix_cache_queries_total"), 2 * queries);
  EXPECT_GT(value(second, "moat:prefix_cache_hits_total"), 0);
  EXPECT_EQ(static_cast<int64_t>(value(second, "moat:prefix_cache_hits_total")) % 16, 0);  // whole blocks
}

}  // namespace
}  // namespace moat::testing

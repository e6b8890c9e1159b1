// API keys: config parsing with line-numbered errors, 401/403/429 decisions, limits with a
// fake clock, reload keeping counters.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "auth/api_key.h"
#include "auth/auth_config.h"
#include "auth/key_store.h"

using namespace moat::auth;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const std::string key_a = "sk-moat-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const std::string key_b = "sk-moat-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

auth_config parse(const std::string& yaml) { return parse_auth_config(YAML::Load(yaml)["auth"], "moat.yaml"); }

std::string config_two_keys(const std::string& limits_a) {
  return "auth:\n"
         "  api_keys:\n"
         "    - { name: team-a, sha256: " + to_hex(digest_of(key_a)) + ", models: [m1, m2]" + limits_a + " }\n"
         "    - { name: team-b, sha256: " + to_hex(digest_of(key_b)) + ", models: [\"*\"] }\n";
}

std::string header_value(const decision& d, const std::string& name) {
  for (const auto& [k, v] : d.headers)
    if (k == name) return v;
  return "";
}

const clock_type::time_point t0{};

}  // namespace

TEST(api_key, generated_keys_are_prefixed_base62_and_distinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const std::string k = generate_api_key();
    ASSERT_EQ(k.size(), 8u + 43u);
    ASSERT_EQ(k.rfind("sk-moat-", 0), 0u);
    for (char c : k.substr(8)) ASSERT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << k;
    seen.insert(k);
  }
  EXPECT_EQ(seen.size(), 200u);
}

TEST(api_key, digest_hex_round_trip_and_known_vector) {
  EXPECT_EQ(to_hex(digest_of("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const auto d = digest_from_hex("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD");
  ASSERT_TRUE(d);
  EXPECT_TRUE(digests_equal(*d, digest_of("abc")));
  EXPECT_FALSE(digests_equal(*d, digest_of("abd")));
  EXPECT_FALSE(digest_from_hex("abc"));
  EXPECT_FALSE(digest_from_hex(std::string(63, 'a') + "g"));
}

TEST(api_key, bearer_token_parsing) {
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer   abc  "), "abc");
  EXPECT_EQ(bearer_token("Basic abc"), "");
  EXPECT_EQ(bearer_token(""), "");
  EXPECT_EQ(bearer_token("Bearer "), "");
}

TEST(auth_config, parses_keys_and_defaults) {
  const auto cfg = parse(config_two_keys(", rpm: 10, tpm: 1000, max_concurrent: 2"));
  ASSERT_EQ(cfg.api_keys.size(), 2u);
  EXPECT_TRUE(cfg.enabled());
  EXPECT_FALSE(cfg.metrics_public);
  EXPECT_EQ(cfg.api_keys[0].rpm, 10u);
  EXPECT_EQ(cfg.api_keys[0].tpm, 1000u);
  EXPECT_EQ(cfg.api_keys[0].max_concurrent, 2u);
  EXPECT_TRUE(cfg.api_keys[0].allows("m2"));
  EXPECT_FALSE(cfg.api_keys[0].allows("m3"));
  EXPECT_TRUE(cfg.api_keys[1].allows("anything"));
  EXPECT_FALSE(parse("auth: {}\n").enabled());
  EXPECT_FALSE(parse("other: 1\n").enabled());
}

TEST(auth_config, errors_name_the_key_and_line) {
  auto message = [](const std::string& yaml) {
    try {
      parse(yaml);
    } catch (const auth_config_error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string bad_sha = message("auth:\n  api_keys:\n    - name: x\n      sha256: sk-moat-oops\n");
  EXPECT_NE(bad_sha.find("moat.yaml:4: auth.api_keys[0].sha256"), std::string::npos) << bad_sha;
  EXPECT_EQ(bad_sha.find("sk-moat-oops"), std::string::npos) << "pasted key echoed: " << bad_sha;
  const std::string typo = message(config_two_keys(", rmp: 5"));
  EXPECT_NE(typo.find("auth.api_keys[0].rmp: unknown key"), std::string::npos) << typo;
  EXPECT_NE(message(config_two_keys(", rpm: -1")).find("auth.api_keys[0].rpm"), std::string::npos);
  EXPECT_NE(message("auth:\n  api_keys:\n    - { sha256: " + std::string(64, 'a') + " }\n").find(".name"),
            std::string::npos);
  const std::string dup = message("auth:\n  api_keys:\n    - { name: a, sha256: " + std::string(64, 'a') +
                                  " }\n    - { name: a, sha256: " + std::string(64, 'b') + " }\n");
  EXPECT_NE(dup.find("duplicate key name"), std::string::npos) << dup;
  EXPECT_NE(message("auth:\n  metrics_public: maybe\n").find("moat.yaml:2: auth.metrics_public"), std::string::npos);
  EXPECT_NE(message("auth:\n  keyz: []\n").find("auth.keyz: unknown key"), std::string::npos);
}

TEST(key_store, missing_wrong_and_right_keys) {
  key_store keys(parse(config_two_keys("")), t0);
  auto d = keys.check("/v1/chat/completions", "", "m1", t0);
  EXPECT_EQ(d.status, 401);
  EXPECT_EQ(d.error_code, "invalid_api_key");
  EXPECT_EQ(d.result, verdict::missing_key);
  d = keys.check("/v1/chat/completions", "Bearer " + key_a + "x", "m1", t0);
  EXPECT_EQ(d.status, 401);
  EXPECT_EQ(d.result, verdict::invalid_key);
  EXPECT_EQ(d.message.find(key_a), std::string::npos);
  d = keys.check("/v1/chat/completions", "Basic " + key_a, "m1", t0);
  EXPECT_EQ(d.status, 401);
  d = keys.check("/v1/chat/completions", "Bearer " + key_a, "m1", t0);
  EXPECT_TRUE(d.allowed());
  EXPECT_EQ(d.status, 200);
  EXPECT_EQ(d.key_name, "team-a");
  d = keys.check("/v1/chat/completions", "Bearer " + key_b, "m9", t0);
  EXPECT_TRUE(d.allowed());
  EXPECT_EQ(d.key_name, "team-b");
}

TEST(key_store, every_route_but_health_needs_a_key) {
  key_store keys(parse(config_two_keys("")), t0);
  for (const char* route : {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models",
                            "/v1/models/m1", "/tokenize", "/detokenize", "/metrics", "/nonexistent", "/",
                            "/health/x", "/healthz", "//health"}) {
    key_ref who;
    EXPECT_EQ(keys.authenticate(route, "", who).status, 401) << route;
  }
  key_ref who;
  EXPECT_TRUE(keys.authenticate("/health", "", who).allowed());
  EXPECT_TRUE(keys.authenticate("/health?x=1", "", who).allowed());
  EXPECT_FALSE(who);
  key_store open_metrics(parse(config_two_keys("") + "  metrics_public: true\n"), t0);
  EXPECT_TRUE(open_metrics.authenticate("/metrics", "", who).allowed());
  EXPECT_EQ(open_metrics.authenticate("/v1/models", "", who).status, 401);
}

TEST(key_store, no_keys_configured_leaves_routes_open) {
  key_store keys(parse("auth: {}\n"), t0);
  EXPECT_FALSE(keys.enabled());
  EXPECT_TRUE(keys.check("/v1/chat/completions", "", "m1", t0).allowed());
}

TEST(key_store, model_not_allowed_is_403) {
  key_store keys(parse(config_two_keys("")), t0);
  const auto d = keys.check("/v1/chat/completions", "Bearer " + key_a, "m3", t0);
  EXPECT_EQ(d.status, 403);
  EXPECT_EQ(d.error_code, "model_not_allowed");
  EXPECT_EQ(d.result, verdict::model_not_allowed);
  // A route without a model (GET /v1/models) is admitted; listing filters with allows_model.
  key_ref who;
  ASSERT_TRUE(keys.authenticate("/v1/models", "Bearer " + key_a, who).allowed());
  EXPECT_TRUE(keys.admit(who, "", t0).allowed());
  EXPECT_TRUE(key_store::allows_model(who, "m1"));
  EXPECT_FALSE(key_store::allows_model(who, "m3"));
}

TEST(key_store, over_rpm_is_429_with_retry_after_and_headers) {
  key_store keys(parse(config_two_keys(", rpm: 3")), t0);
  const std::string auth = "Bearer " + key_a;
  for (int i = 0; i < 3; ++i) {
    auto d = keys.check("/v1/chat/completions", auth, "m1", t0);
    ASSERT_TRUE(d.allowed()) << i;
    EXPECT_EQ(header_value(d, "x-ratelimit-limit-requests"), "3");
    EXPECT_EQ(header_value(d, "x-ratelimit-remaining-requests"), std::to_string(2 - i));
  }
  auto d = keys.check("/v1/chat/completions", auth, "m1", t0);
  EXPECT_EQ(d.status, 429);
  EXPECT_EQ(d.error_code, "rate_limit_exceeded");
  EXPECT_EQ(d.error_type, "requests");
  EXPECT_EQ(header_value(d, "Retry-After"), "20");  // 3/min: one request back every 20 s
  EXPECT_EQ(header_value(d, "x-ratelimit-remaining-requests"), "0");
  EXPECT_EQ(header_value(d, "x-ratelimit-reset-requests"), "1m0s");
  // The other key has its own budget.
  EXPECT_TRUE(keys.check("/v1/chat/completions", "Bearer " + key_b, "m1", t0).allowed());
  // 20 s later one request is back, not two.
  EXPECT_TRUE(keys.check("/v1/chat/completions", auth, "m1", t0 + 20s).allowed());
  EXPECT_EQ(keys.check("/v1/chat/completions", auth, "m1", t0 + 20s).status, 429);
}

TEST(key_store, over_tpm_after_usage_is_charged) {
  key_store keys(parse(config_two_keys(", tpm: 1000")), t0);
  const std::string auth = "Bearer " + key_a;
  auto d = keys.check("/v1/completions", auth, "m1", t0);
  ASSERT_TRUE(d.allowed());
  EXPECT_EQ(header_value(d, "x-ratelimit-remaining-tokens"), "1000");
  d.lease.finish(1500, t0);  // actual usage beyond the budget: the key is in debt
  auto refused = keys.check("/v1/completions", auth, "m1", t0 + 1s);
  EXPECT_EQ(refused.status, 429);
  EXPECT_EQ(refused.error_type, "tokens");
  // Debt of 500 - 1000/60 tokens repaid at 1000/60 per second: about 29 s more.
  const int retry = std::stoi(header_value(refused, "Retry-After"));
  EXPECT_GE(retry, 28);
  EXPECT_LE(retry, 31);
  EXPECT_TRUE(keys.check("/v1/completions", auth, "m1", t0 + 32s).allowed());
}

TEST(key_store, max_concurrent_counts_leases) {
  key_store keys(parse(config_two_keys(", max_concurrent: 2")), t0);
  const std::string auth = "Bearer " + key_a;
  auto first = keys.check("/v1/chat/completions", auth, "m1", t0);
  auto second = keys.check("/v1/chat/completions", auth, "m1", t0);
  ASSERT_TRUE(first.allowed());
  ASSERT_TRUE(second.allowed());
  auto third = keys.check("/v1/chat/completions", auth, "m1", t0);
  EXPECT_EQ(third.status, 429);
  EXPECT_EQ(header_value(third, "Retry-After"), "1");
  first.lease.finish(10, t0);
  EXPECT_TRUE(keys.check("/v1/chat/completions", auth, "m1", t0).allowed());  // a temporary: released at once
  { decision gone = std::move(second); }  // a dropped request (client gone) frees its slot too
  auto a = keys.check("/v1/chat/completions", auth, "m1", t0);
  auto b = keys.check("/v1/chat/completions", auth, "m1", t0);
  EXPECT_TRUE(a.allowed());
  EXPECT_TRUE(b.allowed());
  EXPECT_EQ(keys.check("/v1/chat/completions", auth, "m1", t0).status, 429);
}

TEST(key_store, keys_file_reload_swaps_keys_and_keeps_counters) {
  const fs::path dir = fs::temp_directory_path() / ("moat_keys_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "keys.yaml";
  auto write = [&](const std::string& text) { std::ofstream(file) << text; };
  write("- { name: file-a, sha256: " + to_hex(digest_of(key_a)) + ", rpm: 2 }\n");
  auto cfg = parse("auth:\n  keys_file: " + file.string() + "\n");
  key_store keys(cfg, t0);
  const std::string auth_a = "Bearer " + key_a, auth_b = "Bearer " + key_b;
  EXPECT_TRUE(keys.check("/v1/models", auth_a, "", t0).allowed());
  EXPECT_EQ(keys.check("/v1/models", auth_b, "", t0).status, 401);

  write("api_keys:\n  - { name: file-a, sha256: " + to_hex(digest_of(key_a)) + ", rpm: 2 }\n"
        "  - { name: file-b, sha256: " + to_hex(digest_of(key_b)) + " }\n");
  EXPECT_EQ(keys.reload(t0), "");
  EXPECT_EQ(keys.key_count(), 2u);
  EXPECT_TRUE(keys.check("/v1/models", auth_b, "", t0).allowed());
  EXPECT_TRUE(keys.check("/v1/models", auth_a, "", t0).allowed());  // second of 2: counter kept
  EXPECT_EQ(keys.check("/v1/models", auth_a, "", t0).status, 429);

  write("- { name: broken, sha256: nothex }\n");
  const std::string err = keys.reload(t0);
  EXPECT_NE(err.find("keys.yaml:1"), std::string::npos) << err;
  EXPECT_TRUE(keys.check("/v1/models", auth_b, "", t0).allowed());  // previous keys in force
  fs::remove_all(dir);
}

// A SIGHUP reload swaps the key table while I/O threads authenticate: each check must keep the
// table it is reading alive (the ASan build of this test caught a check that let it go).
TEST(key_store, reload_while_checking_on_another_thread) {
  const fs::path dir = fs::temp_directory_path() / ("moat_keys_race_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "keys.yaml";
  {
    std::ofstream out(file);
    out << "- { name: file-a, sha256: " << to_hex(digest_of(key_a)) << " }\n";
    // Many keys make each check a long walk over the table, so a reload lands inside one.
    for (int i = 0; i < 300; ++i)
      out << "- { name: k" << i << ", sha256: " << to_hex(digest_of("sk-moat-" + std::to_string(i)))
          << " }\n";
  }
  key_store keys(parse("auth:\n  keys_file: " + file.string() + "\n"), t0);
  std::atomic<bool> done{false};
  std::atomic<int> refused{0};
  std::thread checker([&] {
    const std::string auth_a = "Bearer " + key_a;
    while (!done.load()) {
      if (!keys.check("/v1/models", auth_a, "", t0).allowed()) refused.fetch_add(1);
    }
  });
  for (int i = 0; i < 200; ++i) EXPECT_EQ(keys.reload(t0), "");
  done.store(true);
  checker.join();
  EXPECT_EQ(refused.load(), 0);
  EXPECT_EQ(keys.key_count(), 301u);
  fs::remove_all(dir);
}

TEST(key_store, reset_format) {
  EXPECT_EQ(format_reset(0), "0s");
  EXPECT_EQ(format_reset(0.25), "250ms");
  EXPECT_EQ(format_reset(12.2), "13s");
  EXPECT_EQ(format_reset(360), "6m0s");
}

TEST(key_command, prints_a_key_and_the_line_holding_its_hash) {
  const fs::path moat = fs::path(MOAT_BINARY_DIR) / "bin" / "moat";
  if (!fs::exists(moat)) GTEST_SKIP() << "build/bin/moat not built in this tree";
  const fs::path out = fs::temp_directory_path() / ("moat_keynew_" + std::to_string(::getpid()));
  ASSERT_EQ(std::system((moat.string() + " key new team-x --rpm 5 > " + out.string() + " 2>/dev/null").c_str()), 0);
  std::ifstream in(out);
  std::string key, line;
  std::getline(in, key);
  std::getline(in, line);
  fs::remove(out);
  EXPECT_EQ(key.rfind("sk-moat-", 0), 0u);
  EXPECT_EQ(key.size(), 51u);
  EXPECT_EQ(line.find(key), std::string::npos) << "the key itself must not be in the config line";
  // The printed line is valid config that admits exactly that key.
  const auto cfg = parse("auth:\n  api_keys:\n  " + line + "\n");
  ASSERT_EQ(cfg.api_keys.size(), 1u);
  EXPECT_EQ(cfg.api_keys[0].name, "team-x");
  EXPECT_EQ(cfg.api_keys[0].rpm, 5u);
  key_store keys(cfg, t0);
  EXPECT_TRUE(keys.check("/v1/models", "Bearer " + key, "", t0).allowed());
  EXPECT_EQ(std::system((moat.string() + " key new 'bad name' >/dev/null 2>&1").c_str()) != 0, true);
}

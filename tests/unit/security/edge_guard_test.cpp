// Edge hardening: smuggling and header limits, per-IP connection cap, secret scrubbing in logs.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

#include "auth/api_key.h"
#include "auth/edge_guard.h"

using namespace moat::auth;

namespace {
header_verdict check(std::vector<header_view> h, std::string_view raw = {}, header_limits l = {}) {
  return check_request_headers(h, raw, l);
}
}  // namespace

TEST(edge_guard, ordinary_requests_pass) {
  EXPECT_TRUE(check({{"Host", "x"}, {"Content-Length", "12"}, {"Content-Type", "application/json"}}).ok);
  EXPECT_TRUE(check({{"Host", "x"}, {"Transfer-Encoding", "chunked"}}).ok);
  EXPECT_TRUE(check({{"Host", "x"}}, "POST / HTTP/1.1\r\nHost: x\r\n\r\n").ok);
}

TEST(edge_guard, smuggling_shapes_are_400) {
  const std::vector<std::vector<header_view>> cases = {
      {{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}},
      {{"Transfer-Encoding", "chunked"}, {"content-length", "5"}},
      {{"Content-Length", "5"}, {"Content-Length", "5"}},
      {{"Content-Length", "5"}, {"Content-Length", "6"}},
      {{"Content-Length", "5, 5"}},
      {{"Content-Length", "+5"}},
      {{"Content-Length", ""}},
      {{"Transfer-Encoding", "gzip, chunked"}},
      {{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}},
      {{"Transfer-Encoding", "xchunked"}},
      {{"Host", "a"}, {"Host", "b"}},
      {{"X-Bad Name", "1"}},
      {{"X-A", "1\r\nContent-Length: 0"}},
      {{"X-A", std::string_view("a\0b", 3)}},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto v = check(cases[i]);
    EXPECT_FALSE(v.ok) << "case " << i;
    EXPECT_EQ(v.status, 400) << "case " << i;
    EXPECT_FALSE(v.reason.empty());
  }
}

TEST(edge_guard, obs_fold_is_400) {
  const std::string raw = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n";
  EXPECT_TRUE(has_obs_fold(raw));
  EXPECT_FALSE(has_obs_fold("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto v = check({{"Host", "x"}, {"X-A", "one two"}}, raw);
  EXPECT_EQ(v.status, 400);
  EXPECT_NE(v.reason.find("folding"), std::string::npos);
  EXPECT_TRUE(has_obs_fold("GET / HTTP/1.1\r\nHost: x\r\n\tcontinued\r\n\r\n"));
}

TEST(edge_guard, header_count_and_size_limits_are_431) {
  std::vector<header_view> many(101, header_view{"X-A", "1"});
  EXPECT_EQ(check(many).status, 431);
  many.resize(100);
  EXPECT_TRUE(check(many).ok);
  const std::string big(20000, 'a');
  EXPECT_EQ(check({{"X-A", big}}).status, 431);
  EXPECT_EQ(check({{"X-A", "12345"}}, {}, {.max_count = 10, .max_bytes = 4}).status, 431);
}

TEST(edge_guard, connection_cap_per_ip) {
  connection_limiter limiter(2);
  auto a1 = limiter.try_acquire("10.0.0.1");
  auto a2 = limiter.try_acquire("10.0.0.1");
  ASSERT_TRUE(a1 && a2);
  EXPECT_FALSE(limiter.try_acquire("10.0.0.1"));
  EXPECT_TRUE(limiter.try_acquire("10.0.0.2"));  // another address has its own count (temporary: released)
  EXPECT_EQ(limiter.open_from("10.0.0.2"), 0u);
  EXPECT_EQ(limiter.open_from("10.0.0.1"), 2u);
  a1.reset();
  EXPECT_EQ(limiter.open_from("10.0.0.1"), 1u);
  auto a3 = limiter.try_acquire("10.0.0.1");
  EXPECT_TRUE(a3);
  connection_limiter unlimited(0);
  std::vector<connection_limiter::slot> slots;
  for (int i = 0; i < 1000; ++i) slots.push_back(*unlimited.try_acquire("1.2.3.4"));
  EXPECT_EQ(unlimited.open_from("1.2.3.4"), 1000u);
}

TEST(edge_guard, slots_outlive_their_limiter) {
  std::optional<connection_limiter::slot> s;
  {
    connection_limiter limiter(1);
    s = limiter.try_acquire("::1");
  }
  s.reset();  // must not touch freed memory (ASan builds catch it)
  SUCCEED();
}

TEST(log_scrub, secrets_are_redacted) {
  const std::string key = generate_api_key();
  const std::string lines[] = {
      "Authorization: Bearer " + key + "\r\nHost: x",
      "authorization: Basic dXNlcjpwYXNz",
      "request from key " + key + " failed",
      "{\"api_key\": \"" + key + "\", \"model\": \"m\"}",
      "upstream said: invalid token sk-proj-ABCDEFGHIJKLMNOPQRSTUV",
      "x-api-key: hunter2hunter2",
      "header bearer abc.def.ghi rest",
  };
  for (const auto& line : lines) {
    const std::string out = scrub_secrets(line);
    EXPECT_NE(out.find("[redacted]"), std::string::npos) << out;
    EXPECT_EQ(out.find(key), std::string::npos) << out;
    EXPECT_EQ(out.find("dXNlcjpwYXNz"), std::string::npos) << out;
    EXPECT_EQ(out.find("hunter2"), std::string::npos) << out;
    EXPECT_EQ(out.find("abc.def.ghi"), std::string::npos) << out;
    EXPECT_EQ(out.find("ABCDEFGHIJKLMNOP"), std::string::npos) << out;
  }
  EXPECT_NE(scrub_secrets(lines[0]).find("Host: x"), std::string::npos);
  EXPECT_NE(scrub_secrets(lines[3]).find("\"model\": \"m\""), std::string::npos);
  // Ordinary text is untouched, including words that merely contain "sk-".
  const std::string plain = "task-queue depth 3, disk-usage 40%, model stories15m";
  EXPECT_EQ(scrub_secrets(plain), plain);
  EXPECT_EQ(loggable_header_value("AUTHORIZATION", "Bearer x"), "[redacted]");
  EXPECT_EQ(loggable_header_value("content-type", "application/json"), "application/json");
}

TEST(log_scrub, installed_scrubber_cleans_logged_lines) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("scrub-test", sink);
  logger.set_pattern("%v");
  install_log_scrubber(logger);
  install_log_scrubber(logger);  // idempotent
  const std::string key = generate_api_key();
  logger.info("client sent Authorization: Bearer {}", key);
  logger.flush();
  EXPECT_EQ(out.str().find(key), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("client sent Authorization: [redacted]"), std::string::npos) << out.str();
}

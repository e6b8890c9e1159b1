// The /metrics text: Prometheus text format 0.0.4, vLLM names with the moat: prefix, histograms
// cumulative with +Inf equal to _count, labels escaped.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "metrics/registry.h"

namespace {

using namespace moat::metrics;

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

TEST(metrics, histogram_is_cumulative) {
  static constexpr double bounds[] = {0.1, 1.0};
  histogram h(bounds);
  h.observe(0.05);
  h.observe(0.1);  // on the bound: le is inclusive
  h.observe(0.5);
  h.observe(7);
  std::string out;
  h.render(out, "x", "a=\"b\"");
  EXPECT_EQ(out,
            "x_bucket{a=\"b\",le=\"0.1\"} 2\n"
            "x_bucket{a=\"b\",le=\"1\"} 3\n"
            "x_bucket{a=\"b\",le=\"+Inf\"} 4\n"
            "x_sum{a=\"b\"} 7.65\n"
            "x_count{a=\"b\"} 4\n");
}

TEST(metrics, counters_are_exact_under_contention) {
  registry reg({"m"}, "1", "c");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        reg.bytes_sent.add(2);
        reg.model("m")->e2e_latency.observe(0.001);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(reg.bytes_sent.value(), 80000u);
  EXPECT_EQ(reg.model("m")->e2e_latency.count(), 40000u);
}

TEST(metrics, render_names_and_types) {
  registry reg({"echo", "we\"ird"}, "0.1.0", "abc123");
  reg.http_request(route::chat_completions, 200);
  reg.http_request(route::chat_completions, 200);
  reg.http_request(route::unknown, 404);
  reg.http_request(route::health, 299);  // an unlisted status lands in "other"
  reg.error("invalid_request_error");
  reg.connections_active.add(3);
  reg.connections_active.add(-1);
  auto* m = reg.model("echo");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(reg.model("nope"), nullptr);
  m->prompt_tokens.add(5);
  m->generation_tokens.add(7);
  m->success[static_cast<size_t>(finish::length)].add();
  m->ttft.observe(0.002);
  model_live live[] = {{"echo", 2, 1, 3, 0.25}};
  const std::string text = reg.render(live);

  EXPECT_TRUE(has_line(text, "# TYPE moat:num_requests_running gauge"));
  EXPECT_TRUE(has_line(text, "moat:num_requests_running{model_name=\"echo\"} 2"));
  EXPECT_TRUE(has_line(text, "moat:num_requests_waiting{model_name=\"echo\"} 1"));
  EXPECT_TRUE(has_line(text, "moat:num_requests_waiting{model_name=\"we\\\"ird\"} 0"));
  EXPECT_TRUE(has_line(text, "moat:kv_cache_usage_perc{model_name=\"echo\"} 0.25"));
  EXPECT_TRUE(has_line(text, "# TYPE moat:prompt_tokens_total counter"));
  EXPECT_TRUE(has_line(text, "moat:prompt_tokens_total{model_name=\"echo\"} 5"));
  EXPECT_TRUE(has_line(text, "moat:generation_tokens_total{model_name=\"echo\"} 7"));
  EXPECT_TRUE(has_line(text,
                       "moat:request_success_total{model_name=\"echo\",finished_reason=\"length\"} 1"));
  EXPECT_TRUE(has_line(text,
                       "moat:request_success_total{model_name=\"echo\",finished_reason=\"stop\"} 0"));
  EXPECT_TRUE(has_line(text, "# TYPE moat:e2e_request_latency_seconds histogram"));
  EXPECT_TRUE(has_line(text, "# TYPE moat:time_to_first_token_seconds histogram"));
  EXPECT_TRUE(has_line(text, "moat:time_to_first_token_seconds_count{model_name=\"echo\"} 1"));
  EXPECT_TRUE(has_line(text,
                       "moat:time_to_first_token_seconds_bucket{model_name=\"echo\",le=\"0.005\"} 1"));
  EXPECT_TRUE(has_line(text,
                       "moat:time_to_first_token_seconds_bucket{model_name=\"echo\",le=\"0.001\"} 0"));
  EXPECT_TRUE(has_line(text, "# TYPE moat:time_per_output_token_seconds histogram"));
  EXPECT_TRUE(has_line(text,
                       "moat_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2"));
  EXPECT_TRUE(has_line(text, "moat_http_requests_total{route=\"unknown\",status=\"404\"} 1"));
  EXPECT_TRUE(has_line(text, "moat_http_requests_total{route=\"/health\",status=\"other\"} 1"));
  EXPECT_TRUE(has_line(text, "moat_http_connections_active 2"));
  EXPECT_TRUE(has_line(text, "moat_errors_total{type=\"invalid_request_error\"} 1"));
  EXPECT_TRUE(has_line(text, "moat_backend_queue_depth{model_name=\"echo\"} 3"));
  EXPECT_TRUE(has_line(text, "moat_build_info{version=\"0.1.0\",commit=\"abc123\"} 1"));
  EXPECT_TRUE(has_line(text, "# TYPE moat_http_bytes_received_total counter"));
  EXPECT_TRUE(has_line(text, "# TYPE moat_http_bytes_sent_total counter"));

  // Every non-comment line is `name{labels} value` with a known family declared before it.
  std::istringstream in(text);
  std::string declared;
  for (std::string l; std::getline(in, l);) {
    ASSERT_FALSE(l.empty());
    if (l.rfind("# TYPE ", 0) == 0) {
      declared = l.substr(7, l.find(' ', 7) - 7);
      continue;
    }
    if (l[0] == '#') continue;
    EXPECT_EQ(l.rfind(declared, 0), 0u) << l << " not under " << declared;
    EXPECT_NE(l.rfind(' '), std::string::npos);
  }
}

}  // namespace

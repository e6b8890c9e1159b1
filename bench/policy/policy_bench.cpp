// In-process benchmark of the shipped policy library: scan throughput on 1 KB / 100 KB / 1 MB
// prompts, the latency check_request adds to a 1 KB request against no policies, and streamed
// response filtering. Prints a Markdown table (bench/policy/run.sh writes it to
// bench/results/policy.md).
//
//   policy_bench REPO_ROOT [--quick]
#include <yaml-cpp/yaml.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "policy/policy.h"

using namespace moat::policy;
using clock_type = std::chrono::steady_clock;

namespace {

// Throughput is measured in this thread's CPU time, so that other processes on a shared machine
// do not count against it; latency is wall-clock (what a request sees).
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// English-like filler with a PII item about every `pii_every` bytes (0: none).
std::string make_text(size_t bytes, size_t pii_every, uint32_t seed) {
  static const char* words[] = {"the", "model", "answer", "policy", "request", "gateway", "of", "and", "to",
                                "security", "team", "review", "quarterly", "report", "numbers", "customer",
                                "with", "for", "is", "a", "summary", "please", "write", "about", "data"};
  static const char* pii[] = {"jane.doe@example.com", "(415) 555-2671", "4111 1111 1111 1111",
                              "DE89 3704 0044 0532 0130 00", "192.168.10.42", "AKIAIOSFODNN7EXAMPLE"};
  std::mt19937 rng(seed);
  std::string out;
  out.reserve(bytes + 64);
  size_t next_pii = pii_every;
  while (out.size() < bytes) {
    if (pii_every && out.size() >= next_pii) {
      out += pii[rng() % 6];
      next_pii += pii_every;
    } else {
      out += words[rng() % 25];
    }
    out += (rng() % 12 == 0) ? ". " : " ";
  }
  out.resize(bytes);
  return out;
}

request_context chat(const std::string& text) {
  request_context c;
  c.model = "m";
  c.key_name = "bench";
  c.messages.push_back({"system", "You are a helpful assistant."});
  c.messages.push_back({"user", text});
  return c;
}

// Median and p99 of check_request on `text`, in microseconds.
std::pair<double, double> latency_us(const policy_set& set, const std::string& text, int iters) {
  std::vector<double> t;
  t.reserve(iters);
  for (int i = 0; i < iters; ++i) {
    auto ctx = chat(text);
    const auto a = clock_type::now();
    auto d = set.check_request(ctx);
    const auto b = clock_type::now();
    if (d.outcome == verdict::fail) std::fprintf(stderr, "policy failed: %s\n", d.reason.c_str());
    t.push_back(std::chrono::duration<double, std::micro>(b - a).count());
  }
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], t[t.size() * 99 / 100]};
}

// Average CPU µs per check_request (context construction excluded).
double cpu_us_per_call(const policy_set& set, const std::string& text, int iters) {
  std::vector<request_context> ctxs;
  ctxs.reserve(iters);
  for (int i = 0; i < iters; ++i) ctxs.push_back(chat(text));
  const double a = cpu_seconds();
  for (auto& c : ctxs) set.check_request(c);
  return (cpu_seconds() - a) * 1e6 / iters;
}

double scan_mb_s(const policy_set& set, const std::string& text, double min_seconds) {
  int n = 0;
  double busy = 0;
  while (busy < min_seconds) {
    auto ctx = chat(text);
    const double a = cpu_seconds();
    set.check_request(ctx);
    busy += cpu_seconds() - a;
    ++n;
  }
  return static_cast<double>(text.size()) * n / busy / 1e6;
}

double stream_mb_s(const policy_set& set, const std::string& text, size_t chunk, double min_seconds) {
  auto ctx = chat("hi");
  int n = 0;
  size_t out = 0;
  const double start = cpu_seconds();
  double elapsed = 0;
  do {
    auto f = set.response_filter_for(ctx);
    for (size_t i = 0; i < text.size(); i += chunk) out += f->push(std::string_view(text).substr(i, chunk)).size();
    out += f->finish().size();
    ++n;
    elapsed = cpu_seconds() - start;
  } while (elapsed < min_seconds);
  if (out == 0) std::fprintf(stderr, "no output?\n");
  return static_cast<double>(text.size()) * n / elapsed / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: policy_bench REPO_ROOT [--quick]\n");
    return 2;
  }
  const std::string root = argv[1];
  const bool quick = argc > 2 && std::string(argv[2]) == "--quick";
  const double secs = quick ? 0.2 : 1.0;
  const int iters = quick ? 2000 : 20000;
  auto shipped = policy_set::load(YAML::Load("- { path: policies/pii.lua }\n- { path: policies/secrets.lua }\n"
                                             "- { path: policies/prompt_injection.lua }\n"),
                                  root);
  auto rules_only = policy_set::load(YAML::Load("- { path: policies/pii.lua }\n- { path: policies/secrets.lua }\n"), root);
  auto none = policy_set::none();

  std::printf("| measure | prompt | value |\n|---|---|---|\n");
  const std::string kb = make_text(1024, 0, 1);
  const std::string kb_pii = make_text(1024, 300, 2);
  const auto base = latency_us(*none, kb, iters);
  const auto all = latency_us(*shipped, kb, iters);
  const auto all_pii = latency_us(*shipped, kb_pii, iters);
  const auto rules = latency_us(*rules_only, kb, iters);
  std::printf("| check_request, no policies (median / p99) | 1 KB | %.1f / %.1f µs |\n", base.first, base.second);
  std::printf("| check_request, pii+secrets+prompt_injection (median / p99) | 1 KB clean | %.1f / %.1f µs |\n", all.first, all.second);
  std::printf("| check_request, pii+secrets+prompt_injection (median / p99) | 1 KB, 3 PII items | %.1f / %.1f µs |\n", all_pii.first, all_pii.second);
  std::printf("| check_request, pii+secrets only (median / p99) | 1 KB clean | %.1f / %.1f µs |\n", rules.first, rules.second);
  std::printf("| **added by all shipped policies** (median, wall) | 1 KB clean | **%.1f µs** |\n", all.first - base.first);
  const double cpu_none = cpu_us_per_call(*none, kb, iters), cpu_all = cpu_us_per_call(*shipped, kb, iters);
  const double cpu_all_pii = cpu_us_per_call(*shipped, kb_pii, iters);
  std::printf("| **added by all shipped policies** (mean CPU per request) | 1 KB clean | **%.1f µs** |\n", cpu_all - cpu_none);
  std::printf("| added by all shipped policies (mean CPU per request) | 1 KB, 3 PII items | %.1f µs |\n", cpu_all_pii - cpu_none);
  for (size_t size : {size_t(1024), size_t(100 * 1024), size_t(1024 * 1024)}) {
    const std::string clean = make_text(size, 0, 3);
    const std::string dirty = make_text(size, 2048, 4);
    const char* label = size == 1024 ? "1 KB" : size == 100 * 1024 ? "100 KB" : "1 MB";
    std::printf("| scan, all shipped policies, one core (CPU time) | %s clean | %.0f MB/s |\n", label, scan_mb_s(*shipped, clean, secs));
    std::printf("| scan, all shipped policies, one core (CPU time) | %s, PII every 2 KB | %.0f MB/s |\n", label, scan_mb_s(*shipped, dirty, secs));
  }
  const std::string answer = make_text(100 * 1024, 2048, 5);
  const std::string short_answer = make_text(2048, 700, 6);
  {
    auto ctx = chat("hi");
    const int reps = quick ? 200 : 2000;
    const double a = cpu_seconds();
    for (int r = 0; r < reps; ++r) {
      auto f = shipped->response_filter_for(ctx);
      for (size_t i = 0; i < short_answer.size(); i += 4) f->push(std::string_view(short_answer).substr(i, 4));
      f->finish();
    }
    std::printf("| streamed response filter, 4-byte deltas (CPU per answer, fresh filter) | 2 KB answer, 3 PII items | %.0f µs |\n",
                (cpu_seconds() - a) * 1e6 / reps);
  }
  std::printf("| streamed response filter, 4-byte deltas, one core | 100 KB, PII every 2 KB | %.0f MB/s |\n",
              stream_mb_s(*shipped, answer, 4, secs));
  std::printf("| streamed response filter, 64-byte deltas, one core | 100 KB, PII every 2 KB | %.0f MB/s |\n",
              stream_mb_s(*shipped, answer, 64, secs));
  return 0;
}

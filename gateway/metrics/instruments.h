// Lock-free instruments for the hot path: each is a handful of relaxed atomics, so counting a
// request costs a few uncontended-cache-line increments and never a lock.
//
//   moat::metrics::histogram h(moat::metrics::ttft_buckets);
//   h.observe(0.012);                        // any thread
//   std::string text; h.render(text, "moat:time_to_first_token_seconds", "model_name=\"echo\"");
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace moat::metrics {

// A monotonically increasing count. Aligned so two hot counters never share a cache line.
class alignas(64) counter {
 public:
  void add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down (connections, requests running).
class alignas(64) gauge {
 public:
  void add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  void set(int64_t n) { value_.store(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Bucket upper bounds in seconds (the +Inf bucket is implicit). vLLM's bounds, with finer
// sub-millisecond ones in front where a gateway (rather than a model) is measured.
inline constexpr double e2e_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                         0.025, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5,
                                         5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                                         240.0, 480.0, 960.0, 1920.0, 7680.0};
inline constexpr double ttft_buckets[] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.02, 0.04, 0.06,
                                          0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                                          20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
inline constexpr double tpot_buckets[] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05,
                                          0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
                                          2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};

// A Prometheus histogram with fixed bounds. observe() is two relaxed increments and one add;
// a scrape may see a count and a sum from slightly different instants, which Prometheus allows.
class histogram {
 public:
  explicit histogram(std::span<const double> bounds);
  void observe(double seconds);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const;
  // Appends the _bucket/_sum/_count lines (no HELP/TYPE) with `labels` (may be empty).
  void render(std::string& out, std::string_view name, std::string_view labels) const;

 private:
  std::span<const double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // per bound, not cumulative
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};  // nanoseconds, so the sum is one integer add
};

// Appends a number in the text format (integers without a fraction, NaN/Inf spelled out).
void append_number(std::string& out, double value);
// Escapes a label value: backslash, double quote and newline.
void append_label_value(std::string& out, std::string_view value);

}  // namespace moat::metrics

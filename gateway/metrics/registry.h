// Every metric the gateway exports, in one place (listed in docs/metrics.md). Label sets are
// fixed at start (routes, statuses, models, finish reasons are all known), so the hot path
// indexes arrays of atomics and never takes a lock or allocates.
//
//   moat::metrics::registry reg({"echo"}, "0.1.0", "abc123");
//   reg.http_request(moat::metrics::route::chat_completions, 200);
//   auto* m = reg.model("echo");  m->ttft.observe(0.004);
//   std::string text = reg.render(live_figures);   // GET /metrics, backends' own families last
#pragma once

#include <array>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/exposition.h"
#include "metrics/instruments.h"

namespace moat::metrics {

// The route label of moat_http_requests_total.
enum class route : uint8_t {
  chat_completions,
  completions,
  embeddings,
  models,
  model,
  health,
  metrics,
  tokenize,
  detokenize,
  unknown,  // no route matched (404) or a request that never parsed
  count_,
};
std::string_view route_label(route r);

// finished_reason label of moat:request_success_total, in moat_finish_reason order.
enum class finish : uint8_t { stop, length, content_filter, abort, count_ };

// vLLM-style per-model series (label model_name).
struct model_metrics {
  explicit model_metrics(std::string model_name);
  std::string name;
  counter prompt_tokens;
  counter generation_tokens;
  std::array<counter, static_cast<size_t>(finish::count_)> success;
  histogram e2e_latency{e2e_buckets};
  histogram ttft{ttft_buckets};
  histogram tpot{tpot_buckets};
};

// Figures read at scrape time from the host and backends (not counted on the hot path).
struct model_live {
  std::string_view name;
  int64_t running = 0;        // backend's running batch (host in-flight count without stats)
  int64_t waiting = 0;        // backend's admitted-but-not-scheduled requests
  int64_t queue_depth = 0;    // host: requests in flight toward this backend
  double kv_cache_usage = 0;  // 0..1
  // The backend's own families (the plugin's `metrics` slot), already parsed and checked;
  // null when the plugin has none. Families the gateway exports itself are left out at render.
  std::shared_ptr<const backend_exposition> backend_families = nullptr;
};

class registry {
 public:
  registry(const std::vector<std::string>& model_names, std::string version, std::string commit);

  // The status is any HTTP status; the ones the gateway sends have their own slot.
  void http_request(route r, int status);
  // `type` is the OpenAI error type sent to the client (invalid_request_error, ...).
  void error(std::string_view type);
  model_metrics* model(std::string_view name);  // nullptr when unknown

  gauge connections_active;
  counter connections_refused_per_ip;  // closed at accept: server.max_connections_per_ip
  counter bytes_received;
  counter bytes_sent;

  std::string render(std::span<const model_live> live) const;

 private:
  static constexpr int statuses_[] = {200, 400, 401, 403, 404, 405, 408, 413, 429,
                                      431, 500, 501, 502, 503, 504, 0 /* other */};
  static constexpr size_t status_count_ = sizeof(statuses_) / sizeof(statuses_[0]);
  static constexpr std::string_view error_types_[] = {
      "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
      "rate_limit_error",      "server_error",         "timeout_error",    "other"};
  static constexpr size_t error_type_count_ = sizeof(error_types_) / sizeof(error_types_[0]);

  std::string version_;
  std::string commit_;
  std::vector<std::unique_ptr<model_metrics>> models_;
  std::array<std::array<counter, status_count_>, static_cast<size_t>(route::count_)> http_;
  std::array<counter, error_type_count_> errors_;
};

}  // namespace moat::metrics

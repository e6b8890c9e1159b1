// One configured model served by one plugin instance: create() at start, submit/cancel per
// request, destroy() at the end. Bounds its own requests in flight by the model's max_queue.
//
//   moat::host::backend b(cfg.models[0], plugin, cfg.dir, registry, 600s);
//   b.create();                                             // throws host_error
//   auto out = b.submit(request, sink, strand);             // MOAT_OK, or a status + message
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "host/call.h"
#include "host/plugin.h"
#include "metrics/registry.h"

namespace moat::host {

struct submit_outcome {
  moat_status status = MOAT_OK;
  std::string message;          // for the client when status != MOAT_OK
  std::shared_ptr<call> handle;  // when MOAT_OK
};

struct capabilities {
  uint32_t flags = 0;
  uint32_t max_context = 0;
  uint32_t embedding_dim = 0;
  uint32_t max_top_logprobs = 0;
  std::string owned_by;
  bool has(uint32_t flag) const { return (flags & flag) != 0; }
};

class backend {
 public:
  backend(const config::model_config& model, std::shared_ptr<plugin_library> plugin,
          std::filesystem::path config_dir, metrics::registry& metrics,
          std::chrono::milliseconds request_timeout);
  ~backend();  // destroy(): every running request gets its terminal event first
  backend(const backend&) = delete;
  backend& operator=(const backend&) = delete;

  // Loads the model. Blocking; call off the I/O threads. Throws host_error with the plugin's
  // message, the status and where the model is in the config.
  void create();

  // Starts a request. `request.request_id` is assigned here. Any thread; never blocks.
  // The moat_request and what it points to need only live during the call.
  submit_outcome submit(moat_request& request, std::shared_ptr<event_sink> sink,
                        const boost::asio::any_io_executor& strand);
  void cancel(uint64_t request_id);

  // Synchronous helpers (MOAT_CAP_TOKENIZE). On failure: status and message.
  moat_status tokenize(const moat_tokenize_request& request, std::vector<int32_t>& tokens,
                       std::string& message);
  moat_status detokenize(const std::vector<int32_t>& tokens, std::string& text, std::string& message);

  // For /metrics: the host's and the plugin's stats(), and the plugin's own families (the
  // optional `metrics` slot, parsed and checked; left out with one warning when it fails).
  metrics::model_live live() const;

  const std::string& name() const { return model_.name; }
  const config::model_config& model() const { return model_; }
  const capabilities& caps() const { return caps_; }
  const plugin_library& plugin() const { return *plugin_; }
  metrics::model_metrics* metrics() const { return metrics_; }
  // False once destroyed: calls that outlive their backend (their terminal events were posted
  // into a stopped io_context at shutdown) check it before touching the backend.
  const std::shared_ptr<std::atomic<bool>>& alive() const { return alive_; }
  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  friend class call;
  static void log_sink(void* user_data, moat_log_level level, moat_str message) noexcept;
  void release_slot() { in_flight_.fetch_sub(1, std::memory_order_relaxed); }
  std::shared_ptr<const metrics::backend_exposition> backend_metrics() const;
  void warn_metrics_once(const std::string& why) const;

  config::model_config model_;
  std::shared_ptr<plugin_library> plugin_;
  std::filesystem::path config_dir_;
  metrics::model_metrics* metrics_;
  std::chrono::milliseconds request_timeout_;
  moat_backend* handle_ = nullptr;
  capabilities caps_;
  std::atomic<int64_t> in_flight_{0};
  mutable std::atomic<bool> metrics_warned_{false};
  std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);
};

// Request ids unique in this process, shared by all backends (cancel() takes them).
uint64_t next_request_id();

}  // namespace moat::host

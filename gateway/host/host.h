// The plugin host: every configured model's backend, loaded at start off the I/O threads.
//
//   moat::host::plugin_host host(cfg, moat::host::executable_dir(), registry);
//   host.load_all();                       // blocking; throws host_error naming model and file
//   if (auto* b = host.find("echo")) ...   // nullptr until loaded, or when unknown
//   host.shutdown();                       // destroy(): running requests get terminal events
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "host/backend.h"
#include "metrics/registry.h"

namespace moat::host {

class plugin_host {
 public:
  plugin_host(const config::config& cfg, std::filesystem::path executable_dir,
              metrics::registry& metrics);
  ~plugin_host();

  // Opens each model's plugin and creates its backend, in config order.
  void load_all();
  bool loaded() const { return loaded_.load(std::memory_order_acquire); }

  backend* find(std::string_view model) const;
  // All backends once loaded (empty before).
  std::vector<backend*> backends() const;
  std::vector<metrics::model_live> live() const;

  // Destroys every backend. Call after the I/O threads stopped and before the io_context
  // goes: terminal events of running requests are posted into it and dropped with it.
  void shutdown();

 private:
  const config::config& cfg_;
  std::filesystem::path executable_dir_;
  metrics::registry& metrics_;
  std::vector<std::unique_ptr<backend>> backends_;
  std::atomic<bool> loaded_{false};
};

}  // namespace moat::host

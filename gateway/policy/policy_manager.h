// Owns the live policy_set and swaps it atomically: on SIGHUP, when a policy file or the config
// changes, or when the gateway calls reload(). A set that fails to compile leaves the old one in
// place and the reason in last_error() (and the log).
//
//   auto mgr = moat::policy::policy_manager::from_config_file("config/moat.yaml");  // throws
//   moat::policy::policy_manager::install_sighup_handler();   // unless the gateway has its own
//   mgr->start_watching(std::chrono::seconds(1));
//   auto set = mgr->current();   // per request: one atomic load, keep the shared_ptr for the request
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "policy/policy.h"

namespace moat::policy {

class policy_manager {
 public:
  using loader_fn = std::function<std::shared_ptr<const policy_set>()>;

  // `extra_files` are watched besides the set's own scripts (the config file, typically).
  explicit policy_manager(loader_fn loader, std::vector<std::string> extra_files = {});
  ~policy_manager();
  policy_manager(const policy_manager&) = delete;
  policy_manager& operator=(const policy_manager&) = delete;

  // Loads the `policies:` list of a YAML config file (relative paths against its folder).
  static std::unique_ptr<policy_manager> from_config_file(const std::string& path);

  std::shared_ptr<const policy_set> current() const { return current_.load(); }
  // Compiles a new set now; on failure keeps the old one and returns false with the reason.
  bool reload(std::string* why = nullptr);
  uint64_t generation() const { return generation_.load(); }
  std::string last_error() const;

  // A thread that polls the watched files' mtime/size every `interval` and the SIGHUP flag.
  void start_watching(std::chrono::milliseconds interval = std::chrono::milliseconds(1000));
  void stop_watching();
  // Installs a SIGHUP handler that only sets a flag; the watcher thread reloads.
  static void install_sighup_handler();

 private:
  using stamp = std::pair<std::filesystem::file_time_type, uintmax_t>;
  std::map<std::string, stamp> snapshot() const;

  loader_fn loader_;
  std::vector<std::string> extra_files_;
  std::atomic<std::shared_ptr<const policy_set>> current_;
  std::atomic<uint64_t> generation_{0};
  mutable std::mutex mu_;  // reloads and last_error_
  std::string last_error_;
  std::map<std::string, stamp> seen_;

  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool watching_ = false;
  std::thread watcher_;
};

}  // namespace moat::policy

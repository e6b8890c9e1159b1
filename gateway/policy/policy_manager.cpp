#include "policy/policy_manager.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <csignal>

namespace moat::policy {

namespace {

// Set by the handler on whichever thread took the signal, read by the watcher thread: a
// lock-free atomic (safe in a handler, and ordered across threads, which sig_atomic_t is not).
std::atomic<bool> sighup_seen{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_sighup(int) {
  sighup_seen.store(true);
}

}  // namespace

policy_manager::policy_manager(loader_fn loader, std::vector<std::string> extra_files)
    : loader_(std::move(loader)), extra_files_(std::move(extra_files)) {
  current_.store(loader_());  // the first load's errors go to the caller
  generation_ = 1;
  seen_ = snapshot();
  for (const auto& w : current_.load()->warnings()) spdlog::warn("policies: {}", w);
}

policy_manager::~policy_manager() { stop_watching(); }

std::unique_ptr<policy_manager> policy_manager::from_config_file(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  auto loader = [path, dir]() {
    YAML::Node root;
    try {
      root = YAML::LoadFile(path);
    } catch (const YAML::Exception& e) {
      throw policy_error(path + ": " + e.what());
    }
    return policy_set::load(root["policies"], dir.empty() ? "." : dir);
  };
  return std::make_unique<policy_manager>(loader, std::vector<std::string>{path});
}

std::map<std::string, policy_manager::stamp> policy_manager::snapshot() const {
  std::map<std::string, stamp> out;
  auto add = [&](const std::string& f) {
    std::error_code ec;
    const auto t = std::filesystem::last_write_time(f, ec);
    const auto s = ec ? 0 : std::filesystem::file_size(f, ec);
    out[f] = {ec ? std::filesystem::file_time_type{} : t, s};
  };
  for (const auto& f : extra_files_) add(f);
  if (auto set = current_.load())
    for (const auto& f : set->files()) add(f);
  return out;
}

bool policy_manager::reload(std::string* why) {
  std::lock_guard lock(mu_);
  // Stamps taken before loading: an edit made while the loader runs still counts as new. (A set
  // that adds files differs in its keys next time and is reloaded once more, harmlessly.)
  auto before = snapshot();
  try {
    auto next = loader_();
    current_.store(std::move(next));
    ++generation_;
    last_error_.clear();
    for (const auto& w : current_.load()->warnings()) spdlog::warn("policies: {}", w);
    spdlog::info("policies reloaded (generation {})", generation_.load());
  } catch (const std::exception& e) {
    last_error_ = e.what();
    spdlog::error("policies: reload failed, the previous set stays in force: {}", last_error_);
    if (why) *why = last_error_;
    seen_ = std::move(before);
    return false;
  }
  seen_ = std::move(before);
  return true;
}

std::string policy_manager::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

void policy_manager::install_sighup_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_sighup;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGHUP, &sa, nullptr);
}

void policy_manager::start_watching(std::chrono::milliseconds interval) {
  std::lock_guard lock(watch_mu_);
  if (watching_) return;
  watching_ = true;
  watcher_ = std::thread([this, interval] {
    std::unique_lock wl(watch_mu_);
    while (watching_) {
      watch_cv_.wait_for(wl, interval, [&] { return !watching_; });
      if (!watching_) break;
      wl.unlock();
      bool changed = false;
      if (sighup_seen.exchange(false)) {
        changed = true;
        spdlog::info("policies: SIGHUP, reloading");
      } else {
        const auto now = snapshot();
        std::lock_guard lock(mu_);
        changed = now != seen_;
      }
      if (changed) reload();
      wl.lock();
    }
  });
}

void policy_manager::stop_watching() {
  {
    std::lock_guard lock(watch_mu_);
    if (!watching_) return;
    watching_ = false;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

}  // namespace moat::policy

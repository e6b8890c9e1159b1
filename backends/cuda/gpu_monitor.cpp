#include "gpu_monitor.h"

#include <fmt/format.h>

namespace moat::cuda {

std::string kv_pool_text(const kv_pool_usage& kv) {
  if (kv.device_total <= 0 && kv.host_total <= 0) return {};
  std::string out;
  const struct {
    const char* name;
    const char* help;
    int64_t device, host;
  } families[] = {
      {"moat_gpu_kv_blocks_used", "KV cache blocks in use (pool=device: on the GPU, pool=host: swapped out to pinned host memory)",
       kv.device_used, kv.host_used},
      {"moat_gpu_kv_blocks_total", "KV cache blocks in the pool", kv.device_total, kv.host_total},
  };
  for (const auto& f : families) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n", f.name, f.help, f.name);
    if (kv.device_total > 0) out += fmt::format("{}{{pool=\"device\"}} {}\n", f.name, f.device);
    if (kv.host_total > 0) out += fmt::format("{}{{pool=\"host\"}} {}\n", f.name, f.host);
  }
  return out;
}

std::vector<std::string> threshold_watch::update(const std::vector<gpu_sample>& samples) {
  std::vector<std::string> out;
  for (const auto& s : samples) {
    const bool hot = too_hot(s, thresholds_), full = too_full(s, thresholds_);
    auto& [was_hot, was_full] = above_[s.device];
    if (hot && !was_hot) out.push_back(hot_warning(s, thresholds_));
    if (full && !was_full) out.push_back(full_warning(s, thresholds_));
    was_hot = hot;
    was_full = full;
  }
  return out;
}

gpu_monitor::gpu_monitor(sample_fn read, gpu_thresholds thresholds, warn_fn warn, std::chrono::milliseconds refresh,
                         clock_fn now)
    : read_(std::move(read)), warn_(std::move(warn)), refresh_(refresh), now_(std::move(now)), watch_(thresholds) {}

void gpu_monitor::set_devices(std::map<int32_t, int32_t> nvml_to_cuda) {
  std::lock_guard lock(mu_);
  nvml_to_cuda_ = std::move(nvml_to_cuda);
  ever_read_ = false;  // the next scrape reads again with the new selection
}

std::string gpu_monitor::text(const kv_pool_usage& kv) {
  std::lock_guard lock(mu_);
  const auto t = now_();
  if (!ever_read_ || t - read_at_ >= refresh_) {
    ever_read_ = true;
    read_at_ = t;
    ++reads_;
    std::vector<gpu_sample> fresh;
    bool ok = false;
    try {
      ok = read_ && read_(fresh);
    } catch (...) {
      ok = false;  // a reader that throws is a reader without a reading
    }
    if (ok && !nvml_to_cuda_.empty()) {
      std::vector<gpu_sample> mine;
      for (auto s : fresh) {
        const auto it = nvml_to_cuda_.find(s.device);
        if (it == nvml_to_cuda_.end()) continue;
        s.device = it->second;
        mine.push_back(s);
      }
      fresh = std::move(mine);
    }
    have_reading_ = ok;
    samples_ = ok ? std::move(fresh) : std::vector<gpu_sample>{};
    if (ok && warn_) {
      for (const auto& w : watch_.update(samples_)) warn_(w);
    }
  }
  std::string out = have_reading_ && !samples_.empty() ? prometheus_text(samples_) : std::string{};
  out += kv_pool_text(kv);
  return out;
}

}  // namespace moat::cuda

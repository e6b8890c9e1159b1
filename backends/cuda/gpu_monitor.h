// gpu_monitor: what the cuda plugin's `metrics` slot (plugins/include/moat/backend.h) answers.
// It reads GPU samples at most once per `refresh` (NVML calls cost ~0.1-1 ms per device, and the
// slot runs on a gateway I/O thread during a scrape), logs a warning when a device crosses a
// threshold (once per crossing: again only after it went back below), and writes the
// Prometheus text: the moat_gpu_* gauges of gpu_metrics.h and the KV block pool's use.
// Host logic only (the sample source and the clock are injected), so it is tested on the CPU.
//
//   nvml_reader nvml;
//   gpu_monitor mon([&](std::vector<gpu_sample>& s) { return nvml.read(s); },
//                   {.temperature_c = 85, .memory_fraction = 0.97},
//                   [](const std::string& w) { spdlog::warn("{}", w); });
//   std::string text = mon.text(kv_pool_usage{.device_used = 10, .device_total = 512});
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "gpu_metrics.h"

namespace moat::cuda {

// The model's paged KV pools, in blocks (kv_blocks.h). Totals of 0 leave the family out.
struct kv_pool_usage {
  int64_t device_used = 0, device_total = 0;
  int64_t host_used = 0, host_total = 0;  // pinned host blocks holding swapped-out sequences
};

// moat_gpu_kv_blocks_used / moat_gpu_kv_blocks_total with label pool="device" or "host".
std::string kv_pool_text(const kv_pool_usage& kv);

// Remembers which thresholds each device is above, so a hot device warns once per crossing.
class threshold_watch {
 public:
  explicit threshold_watch(gpu_thresholds t) : thresholds_(t) {}
  // The warnings for crossings since the previous call (check_thresholds' wording).
  std::vector<std::string> update(const std::vector<gpu_sample>& samples);

 private:
  gpu_thresholds thresholds_;
  std::map<int32_t, std::pair<bool, bool>> above_;  // device -> (temperature, memory)
};

class gpu_monitor {
 public:
  using sample_fn = std::function<bool(std::vector<gpu_sample>&)>;  // false: no reading
  using warn_fn = std::function<void(const std::string&)>;
  using clock_fn = std::function<std::chrono::steady_clock::time_point()>;

  gpu_monitor(sample_fn read, gpu_thresholds thresholds, warn_fn warn,
              std::chrono::milliseconds refresh = std::chrono::seconds(1),
              clock_fn now = [] { return std::chrono::steady_clock::now(); });

  // Reports only the model's GPUs, labelled with their CUDA ordinals: NVML index -> CUDA
  // ordinal (from the PCI bus ids). Empty (the default): every device NVML sees, as NVML
  // numbers them.
  void set_devices(std::map<int32_t, int32_t> nvml_to_cuda);

  // The text for one scrape: GPU gauges (absent when the source has no reading) and the KV
  // pool's use. Thread-safe; reads the source only when the cached reading is older than
  // `refresh`. Never throws out of a failed read.
  std::string text(const kv_pool_usage& kv);

  int64_t reads() const { return reads_; }  // how many times the source was asked (tests)

 private:
  sample_fn read_;
  warn_fn warn_;
  std::chrono::milliseconds refresh_;
  clock_fn now_;
  std::mutex mu_;
  threshold_watch watch_;
  bool ever_read_ = false;
  bool have_reading_ = false;
  std::chrono::steady_clock::time_point read_at_{};
  std::vector<gpu_sample> samples_;
  std::map<int32_t, int32_t> nvml_to_cuda_;
  int64_t reads_ = 0;
};

}  // namespace moat::cuda

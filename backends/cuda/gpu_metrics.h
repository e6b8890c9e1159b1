// GPU health for /metrics and the logs: per-device samples read through NVML (loaded with
// dlopen, so the plugin neither links nor needs libnvidia-ml on machines without a driver), the
// threshold checks that log warnings, and the Prometheus text of the samples.
//
//   moat::cuda::nvml_reader nvml;                      // dlopen + nvmlInit; never throws
//   std::vector<moat::cuda::gpu_sample> s;
//   if (!nvml.read(s)) spdlog::info("no GPU metrics: {}", nvml.error());
//   for (auto& w : moat::cuda::check_thresholds(s, {.temperature_c = 85, .memory_fraction = 0.95}))
//     spdlog::warn("{}", w);
//   std::string text = moat::cuda::prometheus_text(s);  // moat_gpu_* gauges, label device="0"
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moat::cuda {

struct gpu_sample {
  int32_t device = 0;
  uint32_t utilization_pct = 0;    // GPU busy, 0..100
  uint64_t memory_used_bytes = 0;
  uint64_t memory_total_bytes = 0;
  uint32_t temperature_c = 0;
  double power_w = 0.0;
  uint64_t throttle_reasons = 0;   // NVML clocks-throttle-reason bit mask (0 = not throttled)
};

struct gpu_thresholds {
  uint32_t temperature_c = 85;     // warn at or above
  double memory_fraction = 0.97;   // warn when used / total reaches this
};

// One human-readable warning per device and threshold crossed (no payloads, no secrets).
std::vector<std::string> check_thresholds(const std::vector<gpu_sample>& samples, const gpu_thresholds& t);
// The two tests check_thresholds applies, and its wording for each.
bool too_hot(const gpu_sample& s, const gpu_thresholds& t);
bool too_full(const gpu_sample& s, const gpu_thresholds& t);
std::string hot_warning(const gpu_sample& s, const gpu_thresholds& t);
std::string full_warning(const gpu_sample& s, const gpu_thresholds& t);

// Prometheus text format: moat_gpu_utilization_ratio, moat_gpu_memory_used_bytes,
// moat_gpu_memory_total_bytes, moat_gpu_temperature_celsius, moat_gpu_power_watts,
// moat_gpu_throttle_reasons, each with a device label.
std::string prometheus_text(const std::vector<gpu_sample>& samples);

class nvml_reader {
 public:
  nvml_reader();
  ~nvml_reader();
  nvml_reader(const nvml_reader&) = delete;
  nvml_reader& operator=(const nvml_reader&) = delete;

  bool available() const { return ready_; }
  // Why it is not available, or what the last read failed on.
  const std::string& error() const { return error_; }
  // Fills one sample per device; false (samples cleared) with error() set on failure.
  bool read(std::vector<gpu_sample>& samples);
  // NVML's index of the device at a PCI bus id (cudaDeviceGetPCIBusId's form,
  // "0000:65:00.0"), or -1 when unknown. NVML and CUDA may number devices differently
  // (CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER); the bus id is what both agree on.
  int32_t index_of_pci_bus(const std::string& bus_id);

 private:
  void* lib_ = nullptr;
  bool ready_ = false;
  std::string error_;
};

}  // namespace moat::cuda

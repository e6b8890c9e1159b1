#include "gpu_metrics.h"

#include <dlfcn.h>
#include <fmt/format.h>

namespace moat::cuda {

namespace {

// The few NVML declarations used, from NVML's public ABI (nvml.h is not installed here).
using nvml_return = int;  // NVML_SUCCESS = 0
using nvml_device = void*;
struct nvml_utilization {
  unsigned int gpu, memory;
};
struct nvml_memory {
  unsigned long long total, free, used;
};
constexpr unsigned k_temperature_gpu = 0;  // NVML_TEMPERATURE_GPU

struct nvml_api {
  nvml_return (*init)() = nullptr;
  nvml_return (*shutdown)() = nullptr;
  nvml_return (*count)(unsigned int*) = nullptr;
  nvml_return (*handle)(unsigned int, nvml_device*) = nullptr;
  nvml_return (*utilization)(nvml_device, nvml_utilization*) = nullptr;
  nvml_return (*memory)(nvml_device, nvml_memory*) = nullptr;
  nvml_return (*temperature)(nvml_device, unsigned, unsigned int*) = nullptr;
  nvml_return (*power)(nvml_device, unsigned int*) = nullptr;  // milliwatts
  nvml_return (*throttle)(nvml_device, unsigned long long*) = nullptr;
  nvml_return (*by_pci)(const char*, nvml_device*) = nullptr;  // optional
  nvml_return (*index)(nvml_device, unsigned int*) = nullptr;   // optional
};

nvml_api& api() {
  static nvml_api a;
  return a;
}

template <class F>
bool load(void* lib, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(lib, name));
  return out != nullptr;
}

}  // namespace

bool too_hot(const gpu_sample& s, const gpu_thresholds& t) { return s.temperature_c >= t.temperature_c; }

bool too_full(const gpu_sample& s, const gpu_thresholds& t) {
  return s.memory_total_bytes > 0 &&
         static_cast<double>(s.memory_used_bytes) >= t.memory_fraction * static_cast<double>(s.memory_total_bytes);
}

std::string hot_warning(const gpu_sample& s, const gpu_thresholds& t) {
  return fmt::format("GPU {} temperature {} C is at or above {} C", s.device, s.temperature_c, t.temperature_c);
}

std::string full_warning(const gpu_sample& s, const gpu_thresholds& t) {
  return fmt::format("GPU {} memory {:.1f} of {:.1f} GiB used (threshold {:.0f}%)", s.device,
                     s.memory_used_bytes / 1073741824.0, s.memory_total_bytes / 1073741824.0, t.memory_fraction * 100);
}

std::vector<std::string> check_thresholds(const std::vector<gpu_sample>& samples, const gpu_thresholds& t) {
  std::vector<std::string> out;
  for (const auto& s : samples) {
    if (too_hot(s, t)) out.push_back(hot_warning(s, t));
    if (too_full(s, t)) out.push_back(full_warning(s, t));
  }
  return out;
}

std::string prometheus_text(const std::vector<gpu_sample>& samples) {
  struct gauge {
    const char* name;
    const char* help;
    double (*value)(const gpu_sample&);
  };
  static const gauge gauges[] = {
      {"moat_gpu_utilization_ratio", "GPU busy fraction (NVML utilization.gpu / 100)",
       [](const gpu_sample& s) { return s.utilization_pct / 100.0; }},
      {"moat_gpu_memory_used_bytes", "Device memory in use", [](const gpu_sample& s) { return double(s.memory_used_bytes); }},
      {"moat_gpu_memory_total_bytes", "Device memory", [](const gpu_sample& s) { return double(s.memory_total_bytes); }},
      {"moat_gpu_temperature_celsius", "GPU core temperature", [](const gpu_sample& s) { return double(s.temperature_c); }},
      {"moat_gpu_power_watts", "Board power draw", [](const gpu_sample& s) { return s.power_w; }},
      {"moat_gpu_throttle_reasons", "NVML clocks throttle reason bit mask (0 = none)",
       [](const gpu_sample& s) { return double(s.throttle_reasons); }},
  };
  std::string out;
  for (const auto& g : gauges) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n", g.name, g.help, g.name);
    for (const auto& s : samples) out += fmt::format("{}{{device=\"{}\"}} {}\n", g.name, s.device, g.value(s));
  }
  return out;
}

nvml_reader::nvml_reader() {
  lib_ = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib_ == nullptr) {
    error_ = "libnvidia-ml.so.1 not found (no NVIDIA driver)";
    return;
  }
  auto& a = api();
  if (!load(lib_, "nvmlInit_v2", a.init) || !load(lib_, "nvmlShutdown", a.shutdown) ||
      !load(lib_, "nvmlDeviceGetCount_v2", a.count) || !load(lib_, "nvmlDeviceGetHandleByIndex_v2", a.handle) ||
      !load(lib_, "nvmlDeviceGetUtilizationRates", a.utilization) || !load(lib_, "nvmlDeviceGetMemoryInfo", a.memory) ||
      !load(lib_, "nvmlDeviceGetTemperature", a.temperature) || !load(lib_, "nvmlDeviceGetPowerUsage", a.power)) {
    error_ = "libnvidia-ml.so.1 lacks a needed function";
    return;
  }
  // Renamed "EventReasons" in newer drivers; the old name is still exported. Optional either way.
  if (!load(lib_, "nvmlDeviceGetCurrentClocksThrottleReasons", a.throttle))
    load(lib_, "nvmlDeviceGetCurrentClocksEventReasons", a.throttle);
  if (!load(lib_, "nvmlDeviceGetHandleByPciBusId_v2", a.by_pci)) a.by_pci = nullptr;
  if (!load(lib_, "nvmlDeviceGetIndex", a.index)) a.index = nullptr;
  if (const nvml_return r = a.init(); r != 0) {
    error_ = fmt::format("nvmlInit failed (NVML error {})", r);
    return;
  }
  ready_ = true;
}

nvml_reader::~nvml_reader() {
  if (ready_) api().shutdown();
  if (lib_ != nullptr) dlclose(lib_);
}

bool nvml_reader::read(std::vector<gpu_sample>& samples) {
  samples.clear();
  if (!ready_) return false;
  auto& a = api();
  unsigned int n = 0;
  if (const nvml_return r = a.count(&n); r != 0) {
    error_ = fmt::format("nvmlDeviceGetCount failed (NVML error {})", r);
    return false;
  }
  for (unsigned int i = 0; i < n; ++i) {
    nvml_device d = nullptr;
    gpu_sample s;
    s.device = static_cast<int32_t>(i);
    if (a.handle(i, &d) != 0) {
      error_ = fmt::format("no NVML handle for device {}", i);
      samples.clear();
      return false;
    }
    // A field a device does not report stays 0 rather than failing the whole read.
    nvml_utilization u{};
    if (a.utilization(d, &u) == 0) s.utilization_pct = u.gpu;
    nvml_memory m{};
    if (a.memory(d, &m) == 0) {
      s.memory_used_bytes = m.used;
      s.memory_total_bytes = m.total;
    }
    unsigned int temp = 0, mw = 0;
    if (a.temperature(d, k_temperature_gpu, &temp) == 0) s.temperature_c = temp;
    if (a.power(d, &mw) == 0) s.power_w = mw / 1000.0;
    unsigned long long reasons = 0;
    if (a.throttle != nullptr && a.throttle(d, &reasons) == 0) s.throttle_reasons = reasons;
    samples.push_back(s);
  }
  return true;
}

int32_t nvml_reader::index_of_pci_bus(const std::string& bus_id) {
  auto& a = api();
  if (!ready_ || a.by_pci == nullptr || a.index == nullptr) return -1;
  nvml_device d = nullptr;
  unsigned int i = 0;
  if (a.by_pci(bus_id.c_str(), &d) != 0 || a.index(d, &i) != 0) return -1;
  return static_cast<int32_t>(i);
}

}  // namespace moat::cuda

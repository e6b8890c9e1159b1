// libmoat_cuda.so — the CUDA plugin. create() parses the cuda options, finds out whether a
// device is usable and, since serving is not wired yet, fails with a clear error: serving waits
// for the engine backend glue (scheduler, tokenizer, events) that the cpu plugin has in
// cpu_backend.cpp, to be shared with a runner factory so this plugin passes make_cuda_runner
// (cuda_runner.h) instead of the CPU runner. See docs/cuda.md.
// The `metrics` slot is written already (GPU gauges through NVML, KV pool use, threshold
// warnings): it answers for an instance as soon as create() returns one.
// Every exported function is noexcept; no CUDA error or C++ exception escapes.
#include <cuda_runtime_api.h>
#include <moat/backend.h>

#include <cstddef>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "cuda_options.h"
#include "cuda_runner.h"
#include "gpu_monitor.h"

struct moat_backend {
  moat::cuda::cuda_plugin_options options;
  std::unique_ptr<moat::cuda::nvml_reader> nvml;
  std::unique_ptr<moat::cuda::gpu_monitor> monitor;
  // The KV pool's use, from the serving glue's block manager (kv_blocks.h); empty until then.
  std::function<moat::cuda::kv_pool_usage()> kv_usage;
  moat_log_fn log = nullptr;
  void* log_user_data = nullptr;

  void say(moat_log_level level, const std::string& text) const {
    if (log != nullptr) log(log_user_data, level, moat_str{text.data(), text.size()});
  }
};

namespace {

void set_error(moat_error* err, moat_status code, const std::string& msg) {
  if (err == nullptr) return;
  err->code = code;
  std::snprintf(err->message, sizeof(err->message), "%s", msg.c_str());
}

// The GPU side of /metrics for one instance: NVML when the driver has it (nothing, and one info
// line, when not), thresholds from the options, warnings through the host's log sink.
void start_monitor(moat_backend& b) {
  b.nvml = std::make_unique<moat::cuda::nvml_reader>();
  if (!b.nvml->available()) b.say(MOAT_LOG_INFO, "cuda backend: no GPU metrics: " + b.nvml->error());
  moat::cuda::nvml_reader* nvml = b.nvml.get();
  const moat_backend* self = &b;
  b.monitor = std::make_unique<moat::cuda::gpu_monitor>(
      [nvml](std::vector<moat::cuda::gpu_sample>& s) { return nvml->available() && nvml->read(s); },
      b.options.thresholds, [self](const std::string& w) { self->say(MOAT_LOG_WARN, w); });
  // Only this model's GPUs, under their CUDA ordinals; all of NVML's when a bus id cannot be
  // matched (then the labels are NVML's indices, as docs/metrics.md says).
  std::map<int32_t, int32_t> nvml_to_cuda;
  for (const int32_t d : b.options.devices) {
    char bus[32] = {};
    if (cudaDeviceGetPCIBusId(bus, sizeof bus, d) != cudaSuccess) {
      cudaGetLastError();
      return;
    }
    const int32_t index = nvml->index_of_pci_bus(bus);
    if (index < 0) return;
    nvml_to_cuda[index] = d;
  }
  b.monitor->set_devices(std::move(nvml_to_cuda));
}

moat_status cuda_create(const moat_backend_config* config, moat_backend** out, moat_error* err) noexcept {
  if (out != nullptr) *out = nullptr;
  try {
    auto b = std::make_unique<moat_backend>();
    if (config != nullptr && config->struct_size >= offsetof(moat_backend_config, log_user_data) + sizeof(void*)) {
      b->log = config->log;
      b->log_user_data = config->log_user_data;
    }
    const std::string_view options =
        config != nullptr && config->options_json.data ? std::string_view(config->options_json.data, config->options_json.size)
                                                       : std::string_view();
    try {
      b->options = moat::cuda::parse_cuda_options(options);
    } catch (const std::invalid_argument& e) {
      set_error(err, MOAT_ERR_INVALID_ARGUMENT, std::string("cuda backend: ") + e.what());
      return MOAT_ERR_INVALID_ARGUMENT;
    }
    std::string why;
    const int32_t count = moat::cuda::cuda_device_count(&why);
    if (count == 0) {
      set_error(err, MOAT_ERR_UNAVAILABLE, "cuda backend: " + why + "; use the cpu backend on this machine");
      return MOAT_ERR_UNAVAILABLE;
    }
    for (const int32_t d : b->options.devices) {
      if (d >= count) {
        set_error(err, MOAT_ERR_INVALID_ARGUMENT,
                  "cuda backend: options.devices names GPU " + std::to_string(d) + " but " + std::to_string(count) +
                      " are visible");
        return MOAT_ERR_INVALID_ARGUMENT;
      }
    }
    start_monitor(*b);
    set_error(err, MOAT_ERR_UNSUPPORTED,
              "cuda backend: a device is present, but serving requests through libmoat_cuda.so is not wired "
              "yet (docs/cuda.md); use the cpu backend");
    return MOAT_ERR_UNSUPPORTED;
  } catch (const std::exception& e) {
    set_error(err, MOAT_ERR_INTERNAL, std::string("cuda backend: ") + e.what());
    return MOAT_ERR_INTERNAL;
  }
}

void cuda_destroy(moat_backend* b) noexcept { delete b; }
moat_status cuda_capabilities(moat_backend*, moat_capabilities*) noexcept { return MOAT_ERR_UNAVAILABLE; }
moat_status cuda_submit(moat_backend*, const moat_request*, moat_event_fn, void*, moat_error* err) noexcept {
  set_error(err, MOAT_ERR_UNAVAILABLE, "cuda backend: not serving yet");
  return MOAT_ERR_UNAVAILABLE;
}
void cuda_cancel(moat_backend*, uint64_t) noexcept {}

// The optional metrics slot: moat_gpu_* gauges per device and the KV pool's use. Without NVML
// the GPU families are absent and the call still succeeds.
moat_status cuda_metrics(moat_backend* b, moat_text_fn on_text, void* user_data) noexcept {
  if (b == nullptr || on_text == nullptr || !b->monitor) return MOAT_OK;
  try {
    const moat::cuda::kv_pool_usage kv = b->kv_usage ? b->kv_usage() : moat::cuda::kv_pool_usage{};
    const std::string text = b->monitor->text(kv);
    if (!text.empty()) on_text(user_data, moat_str{text.data(), text.size()});
    return MOAT_OK;
  } catch (...) {
    return MOAT_ERR_INTERNAL;
  }
}

}  // namespace

extern "C" MOAT_EXPORT const moat_backend_api* moat_backend_entry(void) {
  static const moat_backend_api api = [] {
    moat_backend_api a{};
    a.struct_size = sizeof(moat_backend_api);
    a.abi_version = MOAT_BACKEND_ABI_VERSION;
    a.name = moat_str{"cuda", 4};
    a.create = cuda_create;
    a.destroy = cuda_destroy;
    a.capabilities = cuda_capabilities;
    a.submit = cuda_submit;
    a.cancel = cuda_cancel;
    a.metrics = cuda_metrics;
    return a;
  }();
  return &api;
}

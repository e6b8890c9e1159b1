// libmoat_cuda.so — the CUDA plugin. create() parses the cuda options (cuda_options.h), checks
// that the named devices exist, starts the GPU monitor and then builds an
// engine::serving_backend (engine/serving.h: model, tokenizer, chat template, scheduler, the
// ABI calls) whose runner is make_cuda_runner (tensor_parallel 1) or make_tp_runner (> 1). The
// other ABI functions forward to it; metrics() is the engine's KV text plus the GPU gauges.
// Without a device create() fails with MOAT_ERR_UNAVAILABLE before touching the model.
// Every exported function is noexcept; no CUDA error or C++ exception escapes.
#include <cuda_runtime_api.h>
#include <moat/backend.h>

#include <cstddef>
#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "cuda_options.h"
#include "cuda_runner.h"
#include "engine/model_error.h"
#include "engine/serving.h"
#include "gpu_monitor.h"
#include "tp_runner.h"

struct moat_backend {
  moat::cuda::cuda_plugin_options options;
  std::unique_ptr<moat::cuda::nvml_reader> nvml;
  std::unique_ptr<moat::cuda::gpu_monitor> monitor;
  moat_log_fn log = nullptr;
  void* log_user_data = nullptr;
  // Last member: destroyed first, so the scheduler ends every request (and the runner frees its
  // device memory) while the monitor still exists.
  std::unique_ptr<moat::engine::serving_backend> serving;

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

// The serving glue's runner: one GPU, or tensor parallelism over options.devices. Shared keys the
// device runners cannot honour fail create() by name instead of being silently dropped.
moat::engine::serving_plugin cuda_serving_plugin(const moat::cuda::cuda_plugin_options& co) {
  moat::engine::serving_plugin p;
  p.name = "cuda";
  p.own_keys = {"device",          "devices",   "tensor_parallel", "host_kv_mb", "cuda_graphs",
                "gpu_warn_temperature_c", "gpu_warn_memory_fraction"};
  p.make_runner = [co](std::shared_ptr<const moat::engine::loaded_model> model,
                       const moat::engine::serving_options& o) -> std::unique_ptr<moat::engine::model_runner> {
    if (!o.kv_dtype.empty() && o.kv_dtype != "f32")
      throw moat::engine::model_error("options.kv_dtype: the cuda backend stores K/V as f32 only");
    if (o.kv_block_size != 16)
      throw moat::engine::model_error("options.kv_block_size: the cuda backend uses blocks of 16 positions");
    if (o.reference) throw moat::engine::model_error("options.reference: the scalar reference is cpu-only");
    if (co.tensor_parallel <= 1) {
      moat::cuda::cuda_options ro;
      ro.device = co.devices.empty() ? 0 : co.devices.front();
      ro.kv_cache_mb = static_cast<size_t>(o.kv_cache_mb);
      ro.max_ctx = o.ctx;
      ro.max_slots = 0;
      ro.weights = o.quant;
      ro.host_kv_mb = o.host_kv_mb;
      return moat::cuda::make_cuda_runner(std::move(model), ro);
    }
    moat::cuda::tp_runner_options ro;
    ro.devices = co.devices;
    ro.kv_cache_mb = static_cast<size_t>(o.kv_cache_mb);
    ro.max_ctx = o.ctx;
    ro.max_slots = 0;
    ro.weights = o.quant;
    ro.cuda_graphs = co.cuda_graphs;
    ro.graph_max_batch = std::max<int32_t>(1, std::min<int32_t>(o.max_batch, 256));
    return moat::cuda::make_tp_runner(std::move(model), ro);
  };
  p.describe = [co](const moat::engine::serving_options&) {
    std::string gpus;
    for (const int32_t d : co.devices) {
      if (!gpus.empty()) gpus.push_back(',');
      gpus.append(std::to_string(d));
    }
    return co.tensor_parallel > 1 ? "tensor parallel over GPUs " + gpus : "GPU " + gpus;
  };
  return p;
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
    if (config == nullptr || out == nullptr) {
      set_error(err, MOAT_ERR_INVALID_ARGUMENT, "cuda backend: create: missing config or output handle");
      return MOAT_ERR_INVALID_ARGUMENT;
    }
    start_monitor(*b);
    // The engine's messages ("model <name>: ...") keep this plugin's prefix.
    moat_error inner{};
    inner.struct_size = sizeof inner;
    const moat_status s =
        moat::engine::serving_backend::create(config, cuda_serving_plugin(b->options), b->serving, &inner);
    if (s != MOAT_OK) {
      set_error(err, s, std::string("cuda backend: ") + inner.message);
      return s;
    }
    *out = b.release();
    return MOAT_OK;
  } catch (const std::exception& e) {
    set_error(err, MOAT_ERR_INTERNAL, std::string("cuda backend: ") + e.what());
    return MOAT_ERR_INTERNAL;
  } catch (...) {
    set_error(err, MOAT_ERR_INTERNAL, "cuda backend: unknown failure while loading the model");
    return MOAT_ERR_INTERNAL;
  }
}

void cuda_destroy(moat_backend* b) noexcept {
  try {
    delete b;  // the scheduler's destructor sends every open request its terminal event
  } catch (...) {
  }
}

moat_status cuda_capabilities(moat_backend* b, moat_capabilities* caps) noexcept {
  if (b == nullptr || caps == nullptr || !b->serving) return MOAT_ERR_INVALID_ARGUMENT;
  return b->serving->capabilities(caps);
}

moat_status cuda_submit(moat_backend* b, const moat_request* request, moat_event_fn on_event, void* user_data,
                        moat_error* err) noexcept {
  if (b == nullptr || !b->serving) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, "submit: missing request or event sink");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  return b->serving->submit(request, on_event, user_data, err);
}

void cuda_cancel(moat_backend* b, uint64_t request_id) noexcept {
  if (b != nullptr && b->serving) b->serving->cancel(request_id);
}

moat_status cuda_tokenize(moat_backend* b, const moat_tokenize_request* request, moat_tokens_fn on_tokens,
                          void* user_data, moat_error* err) noexcept {
  if (b == nullptr || !b->serving) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, "tokenize: missing request or sink");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  return b->serving->tokenize(request, on_tokens, user_data, err);
}

moat_status cuda_detokenize(moat_backend* b, const int32_t* tokens, size_t count, moat_text_fn on_text,
                            void* user_data, moat_error* err) noexcept {
  if (b == nullptr || !b->serving) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, "detokenize: missing tokens or sink");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  return b->serving->detokenize(tokens, count, on_text, user_data, err);
}

moat_status cuda_stats(moat_backend* b, moat_stats* stats) noexcept {
  if (b == nullptr || stats == nullptr || !b->serving) return MOAT_ERR_INVALID_ARGUMENT;
  return b->serving->stats(stats);
}

// The optional metrics slot: the engine's prefix-cache / preemption / KV block families, then
// moat_gpu_* gauges per device and the device KV pool's use. Without NVML the GPU families are
// absent and the call still succeeds.
moat_status cuda_metrics(moat_backend* b, moat_text_fn on_text, void* user_data) noexcept {
  if (b == nullptr || on_text == nullptr || !b->monitor) return MOAT_OK;
  try {
    std::string text;
    moat::cuda::kv_pool_usage kv;
    if (b->serving) {
      text = b->serving->metrics_text();
      const auto s = b->serving->engine_scheduler().stats();
      kv.device_used = s.kv_blocks_used;
      kv.device_total = s.kv_blocks_total;
    }
    text += b->monitor->text(kv);
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
    a.tokenize = cuda_tokenize;
    a.detokenize = cuda_detokenize;
    a.stats = cuda_stats;
    a.metrics = cuda_metrics;
    return a;
  }();
  return &api;
}

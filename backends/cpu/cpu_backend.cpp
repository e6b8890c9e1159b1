// libmoat_cpu.so: the backend.h table. create() builds an engine::serving_backend with the CPU
// runner; every other function forwards to it. Every function is noexcept and reports failures
// as a moat_status plus a message.
#include <memory>
#include <string>

#include "cpu_backend.h"
#include "cpu_runner.h"

namespace moat::cpu {

engine::serving_plugin cpu_serving_plugin() {
  engine::serving_plugin p;
  p.name = "cpu";
  p.make_runner = [](std::shared_ptr<const engine::loaded_model> model, const engine::serving_options& o) {
    cpu_options ro;
    ro.threads = o.threads;
    ro.kv_cache_mb = static_cast<size_t>(o.kv_cache_mb);
    ro.max_ctx = o.ctx;
    ro.max_slots = 0;  // the paged pool is bounded by kv_cache_mb alone
    ro.reference = o.reference;
    ro.quant = o.quant;
    ro.kv_block_size = o.kv_block_size;
    ro.kv_dtype = o.kv_dtype;
    ro.host_kv_mb = static_cast<size_t>(o.host_kv_mb);
    return make_cpu_runner(std::move(model), ro);
  };
  p.quantize_on_load = true;
  p.describe = [](const engine::serving_options& o) {
    return std::string(o.reference ? "reference" : "batched") + " path";
  };
  return p;
}

namespace {

moat_status cpu_create(const moat_backend_config* config, moat_backend** out, moat_error* err) noexcept {
  if (!config || !out) {
    engine::set_error(err, MOAT_ERR_INVALID_ARGUMENT, "create: missing config or output handle");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  try {
    auto b = std::make_unique<moat_backend>();
    const moat_status s = engine::serving_backend::create(config, cpu_serving_plugin(), b->serving, err);
    if (s != MOAT_OK) return s;
    *out = b.release();
    return MOAT_OK;
  } catch (const std::exception& e) {
    engine::set_error(err, MOAT_ERR_INTERNAL, e.what());
  } catch (...) {
    engine::set_error(err, MOAT_ERR_INTERNAL, "unknown failure while loading the model");
  }
  return MOAT_ERR_INTERNAL;
}

void cpu_destroy(moat_backend* b) noexcept {
  try {
    delete b;  // the scheduler's destructor sends every open request its terminal event
  } catch (...) {
  }
}

moat_status cpu_capabilities(moat_backend* b, moat_capabilities* caps) noexcept {
  if (!b || !caps) return MOAT_ERR_INVALID_ARGUMENT;
  return b->serving->capabilities(caps);
}

moat_status cpu_submit(moat_backend* b, const moat_request* request, moat_event_fn on_event,
                       void* user_data, moat_error* err) noexcept {
  if (!b) {
    engine::set_error(err, MOAT_ERR_INVALID_ARGUMENT, "submit: missing request or event sink");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  return b->serving->submit(request, on_event, user_data, err);
}

void cpu_cancel(moat_backend* b, uint64_t request_id) noexcept {
  if (b) b->serving->cancel(request_id);
}

moat_status cpu_tokenize(moat_backend* b, const moat_tokenize_request* request, moat_tokens_fn on_tokens,
                         void* user_data, moat_error* err) noexcept {
  if (!b) {
    engine::set_error(err, MOAT_ERR_INVALID_ARGUMENT, "tokenize: missing request or sink");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  return b->serving->tokenize(request, on_tokens, user_data, err);
}

moat_status cpu_detokenize(moat_backend* b, const int32_t* tokens, size_t count, moat_text_fn on_text,
                           void* user_data, moat_error* err) noexcept {
  if (!b) {
    engine::set_error(err, MOAT_ERR_INVALID_ARGUMENT, "detokenize: missing tokens or sink");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  return b->serving->detokenize(tokens, count, on_text, user_data, err);
}

moat_status cpu_stats(moat_backend* b, moat_stats* stats) noexcept {
  if (!b || !stats) return MOAT_ERR_INVALID_ARGUMENT;
  return b->serving->stats(stats);
}

// The metrics() slot: prefix-cache counters, preemptions and the KV pool's blocks.
moat_status cpu_metrics(moat_backend* b, moat_text_fn on_text, void* user_data) noexcept {
  if (!b || !on_text) return MOAT_ERR_INVALID_ARGUMENT;
  try {
    const std::string text = b->serving->metrics_text();
    on_text(user_data, {text.data(), text.size()});
    return MOAT_OK;
  } catch (const std::exception&) {
    return MOAT_ERR_INTERNAL;
  }
}

}  // namespace
}  // namespace moat::cpu

extern "C" MOAT_EXPORT const moat_backend_api* moat_backend_entry(void) {
  static const moat_backend_api api = {
      sizeof(moat_backend_api),
      MOAT_BACKEND_ABI_VERSION,
      {"cpu", 3},
      moat::cpu::cpu_create,
      moat::cpu::cpu_destroy,
      moat::cpu::cpu_capabilities,
      moat::cpu::cpu_submit,
      moat::cpu::cpu_cancel,
      moat::cpu::cpu_tokenize,
      moat::cpu::cpu_detokenize,
      moat::cpu::cpu_stats,
      moat::cpu::cpu_metrics,
  };
  return &api;
}

// libmoat_cuda.so — the CUDA plugin, a skeleton for now: create() finds out whether a device is
// usable and says so in a clear error; serving requests waits for the engine backend glue
// (scheduler, tokenizer, events) that the cpu plugin has in cpu_backend.cpp, to be shared with
// a runner factory so this plugin passes make_cuda_runner (cuda_runner.h) instead of the CPU
// runner. See docs/cuda.md. Every exported function is noexcept; no CUDA error escapes.
#include <moat/backend.h>

#include <cstdio>
#include <string>

#include "cuda_runner.h"

namespace {

void set_error(moat_error* err, moat_status code, const std::string& msg) {
  if (err == nullptr) return;
  err->code = code;
  std::snprintf(err->message, sizeof(err->message), "%s", msg.c_str());
}

moat_status cuda_create(const moat_backend_config*, moat_backend** out, moat_error* err) noexcept {
  if (out != nullptr) *out = nullptr;
  try {
    std::string why;
    if (moat::cuda::cuda_device_count(&why) == 0) {
      set_error(err, MOAT_ERR_UNAVAILABLE, "cuda backend: " + why + "; use the cpu backend on this machine");
      return MOAT_ERR_UNAVAILABLE;
    }
    set_error(err, MOAT_ERR_UNSUPPORTED,
              "cuda backend: a device is present, but serving requests through libmoat_cuda.so is not wired "
              "yet (docs/cuda.md); use the cpu backend");
    return MOAT_ERR_UNSUPPORTED;
  } catch (const std::exception& e) {
    set_error(err, MOAT_ERR_INTERNAL, std::string("cuda backend: ") + e.what());
    return MOAT_ERR_INTERNAL;
  }
}

// No instance is ever created (create() always fails), so these only guard against misuse.
void cuda_destroy(moat_backend*) noexcept {}
moat_status cuda_capabilities(moat_backend*, moat_capabilities*) noexcept { return MOAT_ERR_UNAVAILABLE; }
moat_status cuda_submit(moat_backend*, const moat_request*, moat_event_fn, void*, moat_error* err) noexcept {
  set_error(err, MOAT_ERR_UNAVAILABLE, "cuda backend: not created");
  return MOAT_ERR_UNAVAILABLE;
}
void cuda_cancel(moat_backend*, uint64_t) noexcept {}

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
    return a;
  }();
  return &api;
}

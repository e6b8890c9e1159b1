// The cpu plugin (libmoat_cpu.so): engine::serving_backend (engine/serving.h: options, model,
// tokenizer, scheduler, the ABI calls) over the CPU runner. Internal to the plugin.
//
//   std::unique_ptr<moat::engine::serving_backend> s;
//   moat_status st = moat::engine::serving_backend::create(config, moat::cpu::cpu_serving_plugin(), s, err);
//
// Options: the shared keys of engine/serving.h; `threads` and `reference` are the ones only this
// runner reads. The cpu plugin has no keys of its own.
#pragma once

#include <memory>

#include "engine/serving.h"
#include "moat/backend.h"

namespace moat::cpu {

// Name "cpu" (log lines "cpu[<model>]: ..."), make_cpu_runner as the runner factory.
engine::serving_plugin cpu_serving_plugin();

}  // namespace moat::cpu

// The opaque handle of backend.h.
struct moat_backend {
  std::unique_ptr<moat::engine::serving_backend> serving;
};

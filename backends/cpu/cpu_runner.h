// make_cpu_runner: the CPU implementation of engine::model_runner.
//
//   auto model = std::make_shared<const moat::engine::loaded_model>(moat::engine::load_model(path));
//   auto runner = moat::cpu::make_cpu_runner(model, {.threads = 0, .kv_cache_mb = 256});
//
// Two forward passes live behind it: the plain reference one (one token at a time, scalar,
// llama2.c-style, `reference = true`) and the batched, multithreaded one (default). Both
// compute in f32 from F32/F16/BF16 (and dequantized) weights and agree to float rounding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/loader.h"
#include "engine/model_runner.h"

namespace moat::cpu {

struct cpu_options {
  int32_t threads = 0;        // worker threads for the batched path; 0 = all cores
  size_t kv_cache_mb = 256;   // KV pool bound; n_slots = pool / (kv_bytes_per_token * max_ctx)
  int32_t max_ctx = 0;        // positions per slot; 0 = config.max_position_embeddings
  int32_t max_slots = 0;      // cap on slots (0 = as many as fit, at most 256)
  bool reference = false;     // the plain scalar path (tests, debugging)
  std::string quant = {};     // "" = weights as stored; "int8" | "int4" (groups of 64) | "nf4":
                              // linear weights quantized on load (see model_view.h)
};

// Throws engine::model_error when the pool cannot hold even one slot of max_ctx positions.
// The runner keeps `model` alive.
std::unique_ptr<engine::model_runner> make_cpu_runner(std::shared_ptr<const engine::loaded_model> model,
                                                      const cpu_options& opts);

}  // namespace moat::cpu

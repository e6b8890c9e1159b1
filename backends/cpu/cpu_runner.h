// make_cpu_runner: the CPU implementation of engine::model_runner.
//
//   auto model = std::make_shared<const moat::engine::loaded_model>(moat::engine::load_model(path));
//   auto runner = moat::cpu::make_cpu_runner(model, {.threads = 0, .kv_cache_mb = 256});
//
// Two forward passes live behind it: the plain reference one (one token at a time, scalar,
// llama2.c-style, `reference = true`) and the batched, multithreaded one (default). Both
// compute in f32 from F32/F16/BF16 (and dequantized) weights and agree to float rounding.
// Both read and write K/V through block tables (paged_kv.h holds the layout): the block size
// never changes a logit, bit for bit.
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
  size_t kv_cache_mb = 256;   // KV pool bound; n_blocks = pool / (kv_bytes_per_token * kv_block_size), at most 2^20
  int32_t max_ctx = 0;        // positions per sequence; 0 = config.max_position_embeddings
  int32_t max_slots = 0;      // cap the pool at this many whole max_ctx sequences (0 = no cap)
  bool reference = false;     // the plain scalar path (tests, debugging)
  std::string quant = {};     // "" = weights as stored; "int8" | "int4" (groups of 64) | "nf4":
                              // linear weights quantized on load (see model_view.h)
  int32_t kv_block_size = 16; // positions per KV block
  std::string kv_dtype = {};  // "" or "f32" = f32 K/V; "int8" = per (token, head) int8 (paged_kv.h)
  size_t host_kv_mb = 0;      // host KV store for swap preemption (model_runner::host_blocks()): a
                              // second block pool in ordinary memory, blocks moved by memcpy; 0 = none
};

// Throws engine::model_error when the pool cannot hold even one sequence of max_ctx positions,
// or an option is out of range. The runner keeps `model` alive.
std::unique_ptr<engine::model_runner> make_cpu_runner(std::shared_ptr<const engine::loaded_model> model,
                                                      const cpu_options& opts);

}  // namespace moat::cpu

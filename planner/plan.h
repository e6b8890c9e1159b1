// The planner: given a model, formats, a workload and a device, the smallest split that fits,
// what the given devices hold, how fast it decodes and prefills, and what it costs.
//
//   plan_inputs in;  in.model = load_model("llama-3.1-70b");  in.dev = cat.find("h100-80g");
//   in.context = 8192;  in.concurrency = 16;  in.gpus = 2;
//   plan_result r = make_plan(in);
//   r.fits; r.gpus_needed; r.decode_tokens_per_s; r.cost->break_even_tokens_per_month;
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "allocator.h"
#include "cost.h"
#include "factors.h"
#include "formats.h"
#include "hardware.h"
#include "memory.h"
#include "model_spec.h"

namespace moat::planner {

struct plan_inputs {
  model_spec model;
  weight_format weights = weight_format::fp16;
  int group = default_int4_group;
  kv_format kv = kv_format::fp16;
  std::int64_t context = 4096;       // tokens per sequence, prompt and answer
  std::int64_t concurrency = 1;      // sequences decoded together
  kv_paging paging;                  // KV block size, and the prompt the n choices of a request share
  allocator host_allocator = allocator::glibc;  // the serving process's malloc (allocator.h)
  double target_tokens_per_s = 0;    // aggregate decode target; 0 = none
  device dev;
  int gpus = 0;                      // 0: the planner chooses (gpus_needed)
  int tp = 0;                        // 0: from gpus
  efficiency_factors factors;
  cost_inputs costs;
};

// Decode and prefill estimates for one layout (see docs/planning.md for the model).
struct speed {
  double step_seconds = 0;           // one decode step for the whole batch
  double memory_seconds = 0;         // of which: streaming weights and the device-resident KV
  double offload_seconds = 0;        //           streaming the host-resident KV over the host link
  double compute_seconds = 0;        //           the compute bound (overlaps memory; max is taken)
  double comm_seconds = 0;           //           tensor-parallel all-reduces and stage hops
  double decode_tokens_per_s = 0;    // aggregate
  double decode_tokens_per_s_per_sequence = 0;
  double prefill_tokens_per_s = 0;   // aggregate, compute bound
  std::string bound;                 // "memory bandwidth", "compute", "host link"
};

struct plan_result {
  plan_inputs in;
  double params_total = 0;
  double params_active = 0;
  double weights_bytes = 0;
  double weight_bits_per_param = 0;   // weights_bytes * 8 / params_total
  double kv_bytes_per_token = 0;
  double kv_blocks = 0;               // paged KV blocks of paging.block_size positions, all devices
  double kv_bytes_total = 0;          // kv_blocks * block size * kv_bytes_per_token
  // The smallest layout (fewest devices, then widest TP) that holds everything on the devices.
  std::optional<layout> needed;
  // The layout this plan evaluates: the given --gpus/--tp, else `needed`.
  std::optional<layout> planned;
  per_device on_device;               // the fullest device of `planned`
  double total_bytes = 0;             // summed over the devices of `planned`
  bool fits = false;                  // everything on the devices of `planned`
  double kv_offload_bytes = 0;        // KV that must live in host memory to run at all
  bool runs = false;                  // fits, or fits with the KV offloaded
  std::optional<speed> perf;
  std::optional<cost_result> cost;
  std::optional<long long> replicas_for_target;  // copies of the deployment the target needs
  std::vector<std::string> advice;    // what to do when it does not fit, or is slow
};

// Throws plan_error for inputs that make no sense (TP not dividing the heads, zero context...).
plan_result make_plan(const plan_inputs& in);

// The decode/prefill estimate of one layout with `offload_per_device` KV bytes per device in
// host memory.
speed estimate_speed(const plan_inputs& in, const memory_model& mm, const layout& l,
                     double offload_per_device);

}  // namespace moat::planner

// The cuda plugin's own keys in a model's `options:` map (the shared keys, path/quant/ctx/...,
// belong to the engine glue and are left alone here). Parsed once at create(); host code, so
// it is unit-tested without a GPU.
//
//   moat::cuda::cuda_plugin_options o = moat::cuda::parse_cuda_options(cfg.options_json);  // throws
//   o.devices;          // {0, 1} for `tensor_parallel: 2` without `devices`
//
// Keys:
//   device: N                     one GPU (default 0); ignored when devices/tensor_parallel say more
//   tensor_parallel: N            ranks, one thread and one GPU each (default 1)
//   devices: [a, b, ...]          the GPUs of the ranks, in rank order (default 0..N-1)
//   host_kv_mb: N                 pinned host memory for swapped-out KV blocks (default 0: none)
//   cuda_graphs: true|false       capture decode steps as CUDA graphs (default true)
//   gpu_warn_temperature_c: N     log a warning when a GPU reaches it (default 85)
//   gpu_warn_memory_fraction: x   ... or when its memory use reaches x of the total (default 0.97)
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "gpu_metrics.h"

namespace moat::cuda {

struct cuda_plugin_options {
  std::vector<int32_t> devices{0};  // one per rank, distinct
  int32_t tensor_parallel = 1;      // == devices.size()
  int64_t host_kv_mb = 0;
  bool cuda_graphs = true;
  gpu_thresholds thresholds;
};

// Throws std::invalid_argument naming the key ("options.devices: ...") for a wrong type, a
// value out of range, duplicate devices, or devices whose count differs from tensor_parallel.
cuda_plugin_options parse_cuda_options(std::string_view options_json);

}  // namespace moat::cuda

// Uploading engine tensors to the device in a kernel weight format (kernels/formats.h).
// Internal to backends/cuda.
//
//   device_weight w = upload_weight(layer.wq, "int4", 64, stream);
//   kernels::gemv(w.view, x, n_tokens, y, stream);
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cuda_memory.h"
#include "engine/tensor.h"
#include "kernels/formats.h"

namespace moat::cuda {

struct device_weight {
  kernels::gemv_weights view;  // device pointers into the buffers below
  device_buffer<uint8_t> data, codes;
  device_buffer<float> scales, absmax2, map;
};

// format: "" keeps f32/f16/bf16 as stored (other dtypes become f32); "f16", "bf16", "int8",
// "int4", "nf4" convert on the host first. Throws model_error for an unknown format.
// Synchronizes `stream` before returning (the host staging buffers are freed).
device_weight upload_weight(const engine::tensor& t, const std::string& format, int32_t int4_group,
                            cudaStream_t stream);

bool known_weight_format(const std::string& format);

// A 1-D f32 copy of a tensor (norm weights).
device_buffer<float> upload_f32(const engine::tensor& t, cudaStream_t stream);

}  // namespace moat::cuda

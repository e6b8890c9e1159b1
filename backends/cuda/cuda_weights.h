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
// Tensors the loader already holds in a kernel format go up as they are, without a detour
// through f32 (direct_format says which): engine int8 (per-row scales: bitsandbytes 8-bit or
// quantized on load) for "" / "int8", engine int4 (groups of 64) for "" / "int4" with group 64,
// engine nf4 (plain absmax per 64: bitsandbytes 4-bit) for "" / "nf4", GGUF Q4_0 as int4
// with groups of 32 for "" / "int4", and GGUF Q8_0 as int8 with a scale per 32 for "" / "int8".
// Synchronizes `stream` before returning (the host staging buffers are freed).
device_weight upload_weight(const engine::tensor& t, const std::string& format, int32_t int4_group,
                            cudaStream_t stream);

bool known_weight_format(const std::string& format);

// Whether upload_weight sends `t` up as stored for `format`, and in which kernel format.
bool direct_format(const engine::tensor& t, const std::string& format, int32_t int4_group,
                   kernels::weight_format* out);

// GGUF Q4_0 rows [rows][cols/32 x (f16 scale, 16 bytes)] → the kernels' int4 with groups of 32:
// q [rows][cols/2] bytes (the same nibbles, same order), s [rows][cols/32] f32. Lossless.
void repack_q4_0_as_int4(const engine::tensor& t, std::vector<uint8_t>& q, std::vector<float>& s);

// GGUF Q8_0 rows [rows][cols/32 x (f16 scale, 32 int8)] → the kernels' int8 with int8_group 32:
// q [rows][cols] int8 (the same bytes), s [rows][cols/32] f32. Lossless; 1.06 bytes a weight
// on the device where the f32 detour took 4.
void repack_q8_0_as_int8(const engine::tensor& t, std::vector<int8_t>& q, std::vector<float>& s);

// A 1-D f32 copy of a tensor (norm weights).
device_buffer<float> upload_f32(const engine::tensor& t, cudaStream_t stream);

}  // namespace moat::cuda

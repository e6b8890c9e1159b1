// weight_storage: owns the memory the tensors of a loaded_model point into. Internal to the
// loaders; everyone else holds it only through loaded_model::storage.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/gguf.h"
#include "engine/mapped_file.h"

namespace moat::engine {

struct weight_storage {
  std::vector<std::shared_ptr<mapped_file>> maps;       // safetensors / llama2.c mappings
  std::shared_ptr<const gguf_file> gguf;                // keeps a GGUF mapping alive
  std::vector<std::unique_ptr<float[]>> buffers;        // dequantized copies
  // Per-block / per-row f32 scales of bitsandbytes weights (nf4 absmax rebuilt from the
  // double-quantized statistics, int8 SCB / 127); tensor::scales points into them.
  std::vector<std::vector<float>> scales;
  // Weights quantized on load (load_options::quant): int8 / int4 / nf4 bytes; their scales are
  // in `scales`.
  std::vector<std::unique_ptr<uint8_t[]>> quantized;
};

}  // namespace moat::engine

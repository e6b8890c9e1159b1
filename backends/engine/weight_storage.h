// weight_storage: owns the memory the tensors of a loaded_model point into. Internal to the
// loaders; everyone else holds it only through loaded_model::storage.
#pragma once

#include <memory>
#include <vector>

#include "engine/gguf.h"
#include "engine/mapped_file.h"

namespace moat::engine {

struct weight_storage {
  std::vector<std::shared_ptr<mapped_file>> maps;       // safetensors / llama2.c mappings
  std::shared_ptr<const gguf_file> gguf;                // keeps a GGUF mapping alive
  std::vector<std::unique_ptr<float[]>> buffers;        // dequantized copies
};

}  // namespace moat::engine

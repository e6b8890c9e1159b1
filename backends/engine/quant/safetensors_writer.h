// Writes a .safetensors file: an 8-byte little-endian header length, the JSON header (padded
// with spaces to a multiple of 8 so tensor data stays aligned), then the tensors' bytes in
// order. Used by `moat quantize` for checkpoints in the layout transformers writes.
//
//   std::vector<safetensors_entry> entries;
//   entries.push_back({"w", "F32", {2, 3}, {bytes, 24}});
//   write_safetensors("out/model.safetensors", entries);
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace moat::engine::quant {

struct safetensors_entry {
  std::string name;
  std::string dtype;              // safetensors dtype: "F32", "F16", "BF16", "U8", ...
  std::vector<int64_t> shape;
  std::span<const uint8_t> data;  // not owned; must stay valid until the write returns
};

// Throws std::runtime_error naming the file when it cannot be written.
void write_safetensors(const std::filesystem::path& file, const std::vector<safetensors_entry>& entries);

}  // namespace moat::engine::quant

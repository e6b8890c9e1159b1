// Safetensors reading (internal to the loader): header parsing and mapping of one file or of a
// sharded set (model.safetensors.index.json).
//
//   std::map<std::string, tensor> ts;
//   read_safetensors("model.safetensors", storage, ts);   // tensors point into the mapping
#pragma once

#include <filesystem>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "engine/tensor.h"
#include "engine/weight_storage.h"

namespace moat::engine {

// Parses the header of a .safetensors file already in memory (`bytes`: the whole file, header
// length included) and adds its tensors to `out`; their data point into `bytes`, which must
// outlive them. `name` names the source in errors. Throws model_error as read_safetensors does.
void parse_safetensors(std::span<const uint8_t> bytes, const std::string& name,
                       std::map<std::string, tensor, std::less<>>& out);

// Parses the header of one .safetensors file, maps it into `storage` and adds its tensors to
// `out`. Throws model_error (naming the file and tensor) on a truncated file, a bad header,
// offsets past the end, a size that does not match the shape, or a dtype other than F32/F16/BF16
// and the U8/I8 of bitsandbytes checkpoints (kept as dtype::u8 / i8 for the loader to convert).
// key: the model's key_file/key_env when its weights are encrypted checkpoints (see mapped_file).
void read_safetensors(const std::filesystem::path& file, weight_storage& storage, std::map<std::string, tensor, std::less<>>& out,
                      const crypto::key_source* key = nullptr);

// Reads every shard named by an index file's weight_map.
void read_safetensors_index(const std::filesystem::path& index_json, weight_storage& storage,
                            std::map<std::string, tensor, std::less<>>& out, const crypto::key_source* key = nullptr);

}  // namespace moat::engine

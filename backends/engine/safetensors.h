// Safetensors reading (internal to the loader): header parsing and mapping of one file or of a
// sharded set (model.safetensors.index.json).
//
//   std::map<std::string, tensor> ts;
//   read_safetensors("model.safetensors", storage, ts);   // tensors point into the mapping
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "engine/tensor.h"
#include "engine/weight_storage.h"

namespace moat::engine {

// Parses the header of one .safetensors file, maps it into `storage` and adds its tensors to
// `out`. Throws model_error (naming the file and tensor) on a truncated file, a bad header,
// offsets past the end, a size that does not match the shape, or a dtype other than F32/F16/BF16.
// key: the model's key_file/key_env when its weights are encrypted checkpoints (see mapped_file).
void read_safetensors(const std::filesystem::path& file, weight_storage& storage, std::map<std::string, tensor, std::less<>>& out,
                      const crypto::key_source* key = nullptr);

// Reads every shard named by an index file's weight_map.
void read_safetensors_index(const std::filesystem::path& index_json, weight_storage& storage,
                            std::map<std::string, tensor, std::less<>>& out, const crypto::key_source* key = nullptr);

}  // namespace moat::engine

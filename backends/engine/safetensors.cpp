#include "engine/safetensors.h"

#include <simdjson.h>

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "engine/model_error.h"

namespace moat::engine {

namespace {

constexpr uint64_t max_header_bytes = uint64_t{100} << 20;  // the format's own limit is 100 MB

bool dtype_from_name(std::string_view s, dtype& t) {
  if (s == "F32") t = dtype::f32;
  else if (s == "F16") t = dtype::f16;
  else if (s == "BF16") t = dtype::bf16;
  else if (s == "U8") t = dtype::u8;  // bitsandbytes: packed NF4 codes, absmax codes, quant_state
  else if (s == "I8") t = dtype::i8;  // bitsandbytes 8-bit rows
  else return false;
  return true;
}

}  // namespace

void parse_safetensors(std::span<const uint8_t> bytes, const std::string& name,
                       std::map<std::string, tensor, std::less<>>& out) {
  if (bytes.size() < 8) throw model_error(name + ": truncated safetensors file (no header length)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  if (header_len > max_header_bytes || header_len > bytes.size() - 8) {
    throw model_error(name + ": truncated safetensors file (header of " + std::to_string(header_len) +
                      " bytes does not fit in " + std::to_string(bytes.size()) + ")");
  }
  const uint8_t* data_start = bytes.data() + 8 + header_len;
  const uint64_t data_len = bytes.size() - 8 - header_len;

  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  // simdjson needs padding past the end, so parse from a padded copy of the header.
  simdjson::padded_string header(reinterpret_cast<const char*>(bytes.data() + 8), static_cast<size_t>(header_len));
  if (auto err = parser.parse(header).get(doc); err) {
    throw model_error(name + ": safetensors header is not valid JSON: " + simdjson::error_message(err));
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) throw model_error(name + ": safetensors header is not an object");

  for (auto field : obj) {
    const std::string tname(field.key);
    if (tname == "__metadata__") continue;
    auto bad = [&](const std::string& why) { return model_error(name + ": tensor '" + tname + "': " + why); };
    simdjson::dom::object info;
    if (field.value.get_object().get(info) != simdjson::SUCCESS) throw bad("entry is not an object");
    std::string_view dt;
    if (info["dtype"].get_string().get(dt) != simdjson::SUCCESS) throw bad("no dtype");
    tensor t;
    t.name = tname;
    if (!dtype_from_name(dt, t.type)) throw bad("dtype " + std::string(dt) + " is not supported (F32, F16, BF16, U8, I8)");
    simdjson::dom::array shape;
    if (info["shape"].get_array().get(shape) != simdjson::SUCCESS) throw bad("no shape");
    for (auto d : shape) {
      int64_t v = 0;
      if (d.get_int64().get(v) != simdjson::SUCCESS || v < 0) throw bad("bad shape");
      t.shape.push_back(v);
    }
    simdjson::dom::array offs;
    uint64_t begin = 0, end = 0;
    if (info["data_offsets"].get_array().get(offs) != simdjson::SUCCESS || offs.size() != 2 ||
        offs.at(0).get_uint64().get(begin) != simdjson::SUCCESS || offs.at(1).get_uint64().get(end) != simdjson::SUCCESS ||
        end < begin) {
      throw bad("bad data_offsets");
    }
    if (end > data_len) {
      throw model_error(name + ": truncated safetensors file: tensor '" + tname + "' ends at byte " +
                        std::to_string(8 + header_len + end) + " of " + std::to_string(bytes.size()));
    }
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d != 0 && numel > (uint64_t{1} << 48) / static_cast<uint64_t>(d)) throw bad("shape is absurdly large");
      numel *= static_cast<uint64_t>(d);
    }
    const uint64_t want = numel * dtype_row_bytes(t.type, 1);
    if (want != end - begin) {
      throw bad("holds " + std::to_string(end - begin) + " bytes but its shape needs " + std::to_string(want));
    }
    t.data = data_start + begin;
    if (out.contains(tname)) throw bad("appears in more than one file");
    out.emplace(tname, std::move(t));
  }
}

void read_safetensors(const std::filesystem::path& file, weight_storage& storage,
                      std::map<std::string, tensor, std::less<>>& out, const crypto::key_source* key) {
  auto map = mapped_file::open(file, key);
  std::map<std::string, tensor, std::less<>> mine;
  parse_safetensors(map->bytes(), file.string(), mine);
  for (auto& [tname, t] : mine) {
    if (out.contains(tname)) throw model_error(file.string() + ": tensor '" + tname + "' appears in more than one file");
    // The format does not pad between tensors: a 16/32-bit tensor after an odd-sized U8 one (a
    // bitsandbytes checkpoint written without sorting by alignment) would be read misaligned by
    // the kernels, so it gets an aligned copy.
    const size_t align = t.type == dtype::f32 ? 4 : (t.type == dtype::f16 || t.type == dtype::bf16) ? 2 : 1;
    if (reinterpret_cast<uintptr_t>(t.data) % align != 0) {
      const size_t bytes = dtype_row_bytes(t.type, 1) * static_cast<size_t>(t.numel());
      auto copy = std::make_unique<float[]>((bytes + sizeof(float) - 1) / sizeof(float));
      std::memcpy(copy.get(), t.data, bytes);
      t.data = copy.get();
      storage.buffers.push_back(std::move(copy));
    }
    out.emplace(tname, std::move(t));
  }
  storage.maps.push_back(std::move(map));
}

void read_safetensors_index(const std::filesystem::path& index_json, weight_storage& storage,
                            std::map<std::string, tensor, std::less<>>& out, const crypto::key_source* key) {
  const std::string name = index_json.string();
  simdjson::dom::parser parser;
  simdjson::padded_string text;
  if (simdjson::padded_string::load(name).get(text) != simdjson::SUCCESS) throw model_error(name + ": cannot read");
  simdjson::dom::element doc;
  if (auto err = parser.parse(text).get(doc); err) throw model_error(name + ": not valid JSON: " + simdjson::error_message(err));
  simdjson::dom::object weight_map;
  if (doc["weight_map"].get_object().get(weight_map) != simdjson::SUCCESS) throw model_error(name + ": no weight_map object");
  std::set<std::string> files;
  std::map<std::string, std::string> expected;  // tensor -> shard, to check the shards agree
  for (auto field : weight_map) {
    std::string_view shard;
    if (field.value.get_string().get(shard) != simdjson::SUCCESS) throw model_error(name + ": weight_map values must be file names");
    if (shard.find('/') != std::string_view::npos || shard.find("..") != std::string_view::npos) {
      throw model_error(name + ": shard name '" + std::string(shard) + "' must be a plain file name");
    }
    files.emplace(shard);
    expected.emplace(std::string(field.key), std::string(shard));
  }
  for (const auto& f : files) read_safetensors(index_json.parent_path() / f, storage, out, key);
  for (const auto& [tname, shard] : expected) {
    if (!out.contains(tname)) throw model_error(name + ": tensor '" + tname + "' is listed for " + shard + " but not stored there");
  }
}

}  // namespace moat::engine

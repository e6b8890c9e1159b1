// gguf_file: a read-only, mmap-backed reader for GGUF v2/v3 (llama.cpp's single-file format):
// header, every metadata type including (nested) arrays, and the tensor directory.
//
//   auto g = moat::engine::gguf_file::open("model.gguf");
//   std::string arch = g->get_string("general.architecture");
//   std::span<const std::string> pieces = g->get_strings("tokenizer.ggml.tokens");
//   std::span<const double> scores = g->get_floats("tokenizer.ggml.scores");
//   if (const gguf_tensor_info* t = g->find_tensor("token_embd.weight")) { ... t->data ... }
//
// Every accessor that names a key throws model_error (naming the file and key) when the key is
// missing or has another type; find()/get_*_or() do not throw. Thread-safe once opened.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model_config.h"
#include "crypto/key.h"
#include "engine/tensor.h"

namespace moat::engine {

class mapped_file;

enum class gguf_type : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
  string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};

// One metadata value. Scalars fill as_int (integers and bool) or as_float (floats; integers
// too, converted) or as_string. Arrays fill exactly one of ints / floats / strings according to
// array_type; arrays of arrays are kept only as their length (array_size) — no Llama key uses
// them.
struct gguf_value {
  gguf_type type = gguf_type::u8;
  gguf_type array_type = gguf_type::u8;  // element type when type == array
  uint64_t array_size = 0;
  int64_t as_int = 0;
  double as_float = 0.0;
  std::string as_string;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
};

// GGML tensor type ids as written in the file (ggml.h's enum ggml_type).
enum class ggml_type : uint32_t { f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 8, bf16 = 30 };

struct gguf_tensor_info {
  std::string name;
  std::vector<int64_t> ne;     // GGML order: ne[0] is the innermost (contiguous) dimension
  uint32_t type = 0;           // raw ggml_type id
  uint64_t offset = 0;         // from the start of the data section
  const uint8_t* data = nullptr;  // into the mapping; valid while the gguf_file lives
  size_t bytes = 0;
};

class gguf_file {
 public:
  // Throws model_error for a bad magic, unsupported version (not 2 or 3), truncation anywhere
  // (header, metadata, tensor directory, tensor data past the end) or absurd counts.
  // key: the model's key_file/key_env for an encrypted checkpoint (see mapped_file::open).
  static std::shared_ptr<const gguf_file> open(const std::filesystem::path& path,
                                               const crypto::key_source* key = nullptr);
  ~gguf_file();

  uint32_t version() const { return version_; }
  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, gguf_value, std::less<>>& metadata() const { return metadata_; }
  const std::vector<gguf_tensor_info>& tensors() const { return tensors_; }

  const gguf_value* find(std::string_view key) const;
  const gguf_tensor_info* find_tensor(std::string_view name) const;

  std::string get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;      // any integer or bool type
  double get_float(std::string_view key) const;     // any numeric type
  std::optional<int64_t> get_int_or(std::string_view key) const;
  std::optional<double> get_float_or(std::string_view key) const;
  std::optional<std::string> get_string_or(std::string_view key) const;
  std::span<const std::string> get_strings(std::string_view key) const;
  std::span<const double> get_floats(std::string_view key) const;
  std::span<const int64_t> get_ints(std::string_view key) const;

 private:
  gguf_file() = default;
  std::filesystem::path path_;
  uint32_t version_ = 0;
  std::shared_ptr<mapped_file> map_;
  std::map<std::string, gguf_value, std::less<>> metadata_;
  std::vector<gguf_tensor_info> tensors_;
};

// The engine dtype of a GGML type id; nullopt for types the engine cannot read (Q4_1, K-quants...).
std::optional<dtype> dtype_from_ggml(uint32_t ggml_type_id);

// The Llama config from `<arch>.*` metadata. Only "llama" is accepted (model_error otherwise).
// GGUF from llama.cpp's converter stores q/k for adjacent-pair RoPE.
model_config config_from_gguf(const gguf_file& g);

}  // namespace moat::engine

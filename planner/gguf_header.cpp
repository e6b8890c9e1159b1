#include "gguf_header.h"

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>

#include "formats.h"

namespace moat::planner {

namespace {

// GGUF metadata value types (the GGUF spec's gguf_metadata_value_type).
enum : std::uint32_t {
  t_u8 = 0, t_i8, t_u16, t_i16, t_u32, t_i32, t_f32, t_bool, t_string, t_array, t_u64, t_i64, t_f64
};

class reader {
 public:
  explicit reader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
    if (!in_) throw plan_error(fmt::format("{}: cannot read the file", path));
    in_.seekg(0, std::ios::end);
    size_ = static_cast<std::uint64_t>(in_.tellg());
    in_.seekg(0);
  }

  template <class T>
  T read() {
    T v{};
    need(sizeof(T));
    in_.read(reinterpret_cast<char*>(&v), sizeof(T));
    return v;  // GGUF is little-endian, as is every host moat builds for
  }

  std::string string() {
    const auto n = read<std::uint64_t>();
    need(n);
    if (n > 4096) {  // metadata strings we care about are short; skip long ones
      skip(n);
      return {};
    }
    std::string s(n, '\0');
    in_.read(s.data(), static_cast<std::streamsize>(n));
    return s;
  }

  void skip(std::uint64_t n) {
    need(n);
    in_.seekg(static_cast<std::streamoff>(n), std::ios::cur);
  }

  // Reads one value of `type`: integers are returned, everything else skipped.
  std::optional<std::int64_t> value(std::uint32_t type, std::uint64_t* array_count = nullptr) {
    switch (type) {
      case t_u8: return read<std::uint8_t>();
      case t_i8: return read<std::int8_t>();
      case t_u16: return read<std::uint16_t>();
      case t_i16: return read<std::int16_t>();
      case t_u32: return read<std::uint32_t>();
      case t_i32: return read<std::int32_t>();
      case t_u64: {
        const auto v = read<std::uint64_t>();
        return v > static_cast<std::uint64_t>(INT64_MAX) ? std::nullopt : std::optional<std::int64_t>(v);
      }
      case t_i64: return read<std::int64_t>();
      case t_f32: skip(4); return std::nullopt;
      case t_f64: skip(8); return std::nullopt;
      case t_bool: skip(1); return std::nullopt;
      case t_string: string(); return std::nullopt;
      case t_array: {
        const auto inner = read<std::uint32_t>();
        const auto count = read<std::uint64_t>();
        if (array_count) *array_count = count;
        const int fixed = fixed_size(inner);
        if (fixed > 0) {
          if (count > remaining() / static_cast<std::uint64_t>(fixed)) fail("an array longer than the file");
          skip(count * static_cast<std::uint64_t>(fixed));
        } else if (inner == t_string) {
          for (std::uint64_t i = 0; i < count; ++i) skip(read<std::uint64_t>());
        } else {
          fail(fmt::format("an array of type {}", inner));  // nested arrays: not in any llama GGUF
        }
        return std::nullopt;
      }
      default: fail(fmt::format("unknown metadata type {}", type));
    }
    return std::nullopt;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw plan_error(fmt::format("{}: not a readable GGUF file ({})", path_, what));
  }

 private:
  static int fixed_size(std::uint32_t t) {
    switch (t) {
      case t_u8: case t_i8: case t_bool: return 1;
      case t_u16: case t_i16: return 2;
      case t_u32: case t_i32: case t_f32: return 4;
      case t_u64: case t_i64: case t_f64: return 8;
      default: return 0;
    }
  }
  std::uint64_t remaining() { return size_ - static_cast<std::uint64_t>(in_.tellg()); }
  void need(std::uint64_t n) {
    if (!in_ || n > remaining()) fail("truncated");
  }

  std::string path_;
  std::ifstream in_;
  std::uint64_t size_ = 0;
};

}  // namespace

model_spec read_gguf_shape(const std::string& path) {
  reader r(path);
  char magic[4];
  for (char& c : magic) c = static_cast<char>(r.read<std::uint8_t>());
  if (std::memcmp(magic, "GGUF", 4) != 0) r.fail("no GGUF magic");
  const auto version = r.read<std::uint32_t>();
  if (version < 2 || version > 3) r.fail(fmt::format("version {}", version));
  const auto tensors = r.read<std::uint64_t>();
  const auto kvs = r.read<std::uint64_t>();
  if (tensors > (1u << 24) || kvs > (1u << 24)) r.fail("implausible counts");

  std::map<std::string, std::int64_t> ints;
  std::string arch;
  std::int64_t token_count = 0;
  for (std::uint64_t i = 0; i < kvs; ++i) {
    const std::string key = r.string();
    const auto type = r.read<std::uint32_t>();
    if (key == "general.architecture" && type == t_string) {
      arch = r.string();
      continue;
    }
    std::uint64_t count = 0;
    const auto v = r.value(type, &count);
    if (v) ints[key] = *v;
    if (key == "tokenizer.ggml.tokens") token_count = static_cast<std::int64_t>(std::min<std::uint64_t>(count, INT64_MAX));
  }
  if (arch.empty()) r.fail("no general.architecture");
  if (arch != "llama" && arch != "mistral")
    throw plan_error(fmt::format("{}: architecture '{}'; the planner sizes Llama-family decoders", path, arch));

  if (tensors == 0)
    throw plan_error(fmt::format("{}: a GGUF with no tensors (a vocabulary-only file): no weights to size", path));
  bool has_output = false;  // an untied model stores the LM head as output.weight
  for (std::uint64_t i = 0; i < tensors; ++i) {
    const std::string name = r.string();
    const auto dims = r.read<std::uint32_t>();
    if (dims > 8) r.fail("a tensor of more than 8 dimensions");
    r.skip(8ull * dims + 4 + 8);  // the dims, the type, the offset
    if (name == "output.weight") has_output = true;
  }

  auto get = [&](const std::string& key, bool required, std::int64_t fallback = 0) {
    const auto it = ints.find(arch + "." + key);
    if (it == ints.end()) {
      if (required) throw plan_error(fmt::format("{}: missing {}.{}", path, arch, key));
      return fallback;
    }
    return it->second;
  };
  model_spec m;
  m.source = path;
  const auto slash = path.find_last_of('/');
  m.name = slash == std::string::npos ? path : path.substr(slash + 1);
  m.hidden = get("embedding_length", true);
  m.layers = get("block_count", true);
  m.heads = get("attention.head_count", true);
  m.kv_heads = get("attention.head_count_kv", false, m.heads);
  m.head_dim = get("attention.key_length", false, m.heads > 0 ? m.hidden / m.heads : 0);
  m.intermediate = get("feed_forward_length", true);
  m.vocab = get("vocab_size", false, token_count);
  m.max_context = get("context_length", false, 0);
  m.experts = get("expert_count", false, 1);
  m.experts_per_token = get("expert_used_count", false, 1);
  m.tied_embeddings = !has_output;
  validate_shape(m, path);
  return m;
}

}  // namespace moat::planner

#include "engine/gguf.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "engine/mapped_file.h"
#include "engine/model_error.h"

namespace moat::engine {

namespace {

constexpr uint32_t gguf_magic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t max_count = uint64_t{1} << 32;  // far above any real file, below overflow
constexpr uint64_t max_elements = uint64_t{1} << 48;

// Bounds-checked little-endian reader over the mapping; every read names the file on failure.
class cursor {
 public:
  cursor(std::span<const uint8_t> bytes, const std::filesystem::path& path) : bytes_(bytes), path_(path) {}

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

  void need(uint64_t n, const char* what) const {
    if (n > bytes_.size() - pos_) {
      throw model_error(path_.string() + ": truncated GGUF (reading " + what + " at byte " + std::to_string(pos_) + ")");
    }
  }

  size_t pos() const { return pos_; }
  void seek(size_t p) { pos_ = p; }

 private:
  std::span<const uint8_t> bytes_;
  const std::filesystem::path& path_;
  size_t pos_ = 0;
};

bool is_integer(gguf_type t) {
  switch (t) {
    case gguf_type::u8: case gguf_type::i8: case gguf_type::u16: case gguf_type::i16:
    case gguf_type::u32: case gguf_type::i32: case gguf_type::u64: case gguf_type::i64:
    case gguf_type::boolean:
      return true;
    default:
      return false;
  }
}

// A float's integer view, when it has one: static_cast of a NaN, an infinity or a value outside
// int64_t is undefined behaviour (UBSan: fuzz/corpus/gguf/float_to_int_overflow). Otherwise 0;
// get_int never reads it anyway, since a float key is a type error there ("is not an integer").
int64_t float_as_int(double f) {
  constexpr double lo = -9223372036854775808.0;  // -2^63, exact
  constexpr double hi = 9223372036854775808.0;   // 2^63, the first value past the range
  return std::isfinite(f) && f >= lo && f < hi ? static_cast<int64_t>(f) : 0;
}

// Reads one scalar of type t as (int, float) pair; strings handled by the caller.
void read_number(cursor& c, gguf_type t, int64_t& i, double& f) {
  switch (t) {
    case gguf_type::u8: i = c.read<uint8_t>("u8"); break;
    case gguf_type::i8: i = c.read<int8_t>("i8"); break;
    case gguf_type::u16: i = c.read<uint16_t>("u16"); break;
    case gguf_type::i16: i = c.read<int16_t>("i16"); break;
    case gguf_type::u32: i = c.read<uint32_t>("u32"); break;
    case gguf_type::i32: i = c.read<int32_t>("i32"); break;
    case gguf_type::u64: i = static_cast<int64_t>(c.read<uint64_t>("u64")); break;
    case gguf_type::i64: i = c.read<int64_t>("i64"); break;
    case gguf_type::boolean: i = c.read<uint8_t>("bool") != 0; break;
    case gguf_type::f32: f = c.read<float>("f32"); i = float_as_int(f); return;
    case gguf_type::f64: f = c.read<double>("f64"); i = float_as_int(f); return;
    default: return;
  }
  f = static_cast<double>(i);
}

void read_value(cursor& c, gguf_type t, gguf_value& v, const std::filesystem::path& path, const std::string& key,
                int depth) {
  v.type = t;
  if (t == gguf_type::string) {
    v.as_string = c.read_string("string value");
    return;
  }
  if (t != gguf_type::array) {
    if (static_cast<uint32_t>(t) > static_cast<uint32_t>(gguf_type::f64)) {
      throw model_error(path.string() + ": metadata key '" + key + "' has unknown type " + std::to_string(static_cast<uint32_t>(t)));
    }
    read_number(c, t, v.as_int, v.as_float);
    return;
  }
  if (depth > 4) throw model_error(path.string() + ": metadata key '" + key + "' nests arrays too deeply");
  v.array_type = static_cast<gguf_type>(c.read<uint32_t>("array type"));
  v.array_size = c.read<uint64_t>("array length");
  if (v.array_size > max_count) throw model_error(path.string() + ": metadata key '" + key + "' has an absurd array length");
  // Each element takes at least one byte: reject lengths the file cannot hold before reserving.
  c.need(v.array_size, "array elements");
  const gguf_type et = v.array_type;
  if (et == gguf_type::string) {
    v.strings.reserve(static_cast<size_t>(v.array_size));
    for (uint64_t k = 0; k < v.array_size; ++k) v.strings.push_back(c.read_string("string array element"));
  } else if (et == gguf_type::array) {
    for (uint64_t k = 0; k < v.array_size; ++k) {
      gguf_value inner;
      read_value(c, gguf_type::array, inner, path, key, depth + 1);
    }
  } else if (is_integer(et)) {
    v.ints.resize(static_cast<size_t>(v.array_size));
    for (auto& x : v.ints) {
      double unused = 0;
      read_number(c, et, x, unused);
    }
  } else if (et == gguf_type::f32 || et == gguf_type::f64) {
    v.floats.resize(static_cast<size_t>(v.array_size));
    for (auto& x : v.floats) {
      int64_t unused = 0;
      read_number(c, et, unused, x);
    }
  } else {
    throw model_error(path.string() + ": metadata key '" + key + "' is an array of unknown type " +
                      std::to_string(static_cast<uint32_t>(et)));
  }
}

// Bytes of a tensor with ne[0] innermost; 0 for unsupported types (the loader reports those).
size_t ggml_bytes(uint32_t type, const std::vector<int64_t>& ne, bool& supported) {
  uint64_t n = 1;
  for (int64_t d : ne) {
    if (static_cast<uint64_t>(d) > max_elements / n) {  // no file holds this much; keeps bytes from wrapping
      supported = false;
      return 0;
    }
    n *= static_cast<uint64_t>(d);
  }
  supported = true;
  switch (static_cast<ggml_type>(type)) {
    case ggml_type::f32: return n * 4;
    case ggml_type::f16:
    case ggml_type::bf16: return n * 2;
    case ggml_type::q8_0: return n / 32 * 34;
    case ggml_type::q4_0: return n / 32 * 18;
    case ggml_type::q4_1: return n / 32 * 20;
  }
  supported = false;
  return 0;
}

}  // namespace

gguf_file::~gguf_file() = default;

std::shared_ptr<const gguf_file> gguf_file::open(const std::filesystem::path& path, const crypto::key_source* key) {
  std::shared_ptr<gguf_file> g(new gguf_file());
  g->path_ = path;
  g->map_ = mapped_file::open(path, key);
  const auto bytes = g->map_->bytes();
  cursor c(bytes, path);
  if (bytes.size() < 4 || c.read<uint32_t>("magic") != gguf_magic) throw model_error(path.string() + ": not a GGUF file (bad magic)");
  g->version_ = c.read<uint32_t>("version");
  if (g->version_ != 2 && g->version_ != 3) {
    throw model_error(path.string() + ": GGUF version " + std::to_string(g->version_) + " is not supported (2 or 3)");
  }
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  if (n_tensors > max_count || n_kv > max_count) throw model_error(path.string() + ": GGUF header has absurd counts");

  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.read_string("metadata key");
    const auto t = static_cast<gguf_type>(c.read<uint32_t>("metadata type"));
    gguf_value v;
    read_value(c, t, v, path, key, 0);
    g->metadata_.insert_or_assign(std::move(key), std::move(v));
  }

  g->tensors_.reserve(static_cast<size_t>(std::min<uint64_t>(n_tensors, 1 << 16)));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    gguf_tensor_info t;
    t.name = c.read_string("tensor name");
    const uint32_t n_dims = c.read<uint32_t>("tensor dims");
    if (n_dims == 0 || n_dims > 4) throw model_error(path.string() + ": tensor '" + t.name + "' has " + std::to_string(n_dims) + " dimensions");
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.read<uint64_t>("tensor shape");
      if (ne == 0 || ne > max_count) throw model_error(path.string() + ": tensor '" + t.name + "' has a bad dimension");
      t.ne.push_back(static_cast<int64_t>(ne));
    }
    t.type = c.read<uint32_t>("tensor type");
    t.offset = c.read<uint64_t>("tensor offset");
    g->tensors_.push_back(std::move(t));
  }

  uint64_t alignment = 32;
  if (auto a = g->get_int_or("general.alignment")) {
    if (*a <= 0 || (*a & (*a - 1)) != 0) throw model_error(path.string() + ": general.alignment must be a power of two");
    alignment = static_cast<uint64_t>(*a);
  }
  const uint64_t data_start = (c.pos() + alignment - 1) / alignment * alignment;
  for (auto& t : g->tensors_) {
    bool supported = false;
    t.bytes = ggml_bytes(t.type, t.ne, supported);
    if (!supported) continue;  // kept in the directory; the loader rejects it only if it is used
    if (data_start > bytes.size() || t.offset > bytes.size() - data_start || t.bytes > bytes.size() - data_start - t.offset) {
      throw model_error(path.string() + ": truncated GGUF: tensor '" + t.name + "' extends past the end of the file");
    }
    // The format puts every tensor at a multiple of general.alignment; the kernels read f32 as
    // floats and the 16-bit and block types through their fp16 fields, so a tensor that is not at
    // least naturally aligned is refused rather than read misaligned.
    const uint64_t natural = t.type == static_cast<uint32_t>(ggml_type::f32) ? 4 : 2;
    if (t.offset % alignment != 0 || (data_start + t.offset) % natural != 0) {
      throw model_error(path.string() + ": tensor '" + t.name + "' is not aligned (offset " +
                        std::to_string(t.offset) + ", general.alignment " + std::to_string(alignment) + ")");
    }
    t.data = bytes.data() + data_start + t.offset;
  }
  return g;
}

const gguf_value* gguf_file::find(std::string_view key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const gguf_tensor_info* gguf_file::find_tensor(std::string_view name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

namespace {
[[noreturn]] void bad_key(const std::filesystem::path& p, std::string_view key, const char* what) {
  throw model_error(p.string() + ": metadata key '" + std::string(key) + "' " + what);
}
}  // namespace

std::string gguf_file::get_string(std::string_view key) const {
  const gguf_value* v = find(key);
  if (v == nullptr) bad_key(path_, key, "is missing");
  if (v->type != gguf_type::string) bad_key(path_, key, "is not a string");
  return v->as_string;
}

int64_t gguf_file::get_int(std::string_view key) const {
  const gguf_value* v = find(key);
  if (v == nullptr) bad_key(path_, key, "is missing");
  if (!is_integer(v->type)) bad_key(path_, key, "is not an integer");
  return v->as_int;
}

double gguf_file::get_float(std::string_view key) const {
  const gguf_value* v = find(key);
  if (v == nullptr) bad_key(path_, key, "is missing");
  if (!is_integer(v->type) && v->type != gguf_type::f32 && v->type != gguf_type::f64) bad_key(path_, key, "is not a number");
  return v->as_float;
}

std::optional<int64_t> gguf_file::get_int_or(std::string_view key) const {
  const gguf_value* v = find(key);
  if (v == nullptr || !is_integer(v->type)) return std::nullopt;
  return v->as_int;
}

std::optional<double> gguf_file::get_float_or(std::string_view key) const {
  const gguf_value* v = find(key);
  if (v == nullptr || !(is_integer(v->type) || v->type == gguf_type::f32 || v->type == gguf_type::f64)) return std::nullopt;
  return v->as_float;
}

std::optional<std::string> gguf_file::get_string_or(std::string_view key) const {
  const gguf_value* v = find(key);
  if (v == nullptr || v->type != gguf_type::string) return std::nullopt;
  return v->as_string;
}

std::span<const std::string> gguf_file::get_strings(std::string_view key) const {
  const gguf_value* v = find(key);
  if (v == nullptr) bad_key(path_, key, "is missing");
  if (v->type != gguf_type::array || v->array_type != gguf_type::string) bad_key(path_, key, "is not an array of strings");
  return v->strings;
}

std::span<const double> gguf_file::get_floats(std::string_view key) const {
  const gguf_value* v = find(key);
  if (v == nullptr) bad_key(path_, key, "is missing");
  if (v->type != gguf_type::array || (v->array_type != gguf_type::f32 && v->array_type != gguf_type::f64)) {
    bad_key(path_, key, "is not an array of floats");
  }
  return v->floats;
}

std::span<const int64_t> gguf_file::get_ints(std::string_view key) const {
  const gguf_value* v = find(key);
  if (v == nullptr) bad_key(path_, key, "is missing");
  if (v->type != gguf_type::array || !is_integer(v->array_type)) bad_key(path_, key, "is not an array of integers");
  return v->ints;
}

std::optional<dtype> dtype_from_ggml(uint32_t id) {
  switch (static_cast<ggml_type>(id)) {
    case ggml_type::f32: return dtype::f32;
    case ggml_type::f16: return dtype::f16;
    case ggml_type::bf16: return dtype::bf16;
    case ggml_type::q8_0: return dtype::q8_0;
    case ggml_type::q4_0: return dtype::q4_0;
    default: return std::nullopt;
  }
}

model_config config_from_gguf(const gguf_file& g) {
  const std::string arch = g.get_string("general.architecture");
  if (arch != "llama") {
    throw model_error(g.path().string() + ": unsupported architecture '" + arch + "' (supported: llama)");
  }
  const std::string p = arch + ".";
  model_config c;
  c.architecture = "llama";
  c.hidden_size = static_cast<int32_t>(g.get_int(p + "embedding_length"));
  c.intermediate_size = static_cast<int32_t>(g.get_int(p + "feed_forward_length"));
  c.n_layers = static_cast<int32_t>(g.get_int(p + "block_count"));
  c.n_heads = static_cast<int32_t>(g.get_int(p + "attention.head_count"));
  c.n_kv_heads = static_cast<int32_t>(g.get_int_or(p + "attention.head_count_kv").value_or(c.n_heads));
  c.head_dim = c.n_heads > 0 ? c.hidden_size / c.n_heads : 0;
  if (auto kl = g.get_int_or(p + "attention.key_length")) c.head_dim = static_cast<int32_t>(*kl);
  c.max_position_embeddings = static_cast<int32_t>(g.get_int_or(p + "context_length").value_or(2048));
  c.rms_norm_eps = static_cast<float>(g.get_float_or(p + "attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope_theta = static_cast<float>(g.get_float_or(p + "rope.freq_base").value_or(10000.0));
  if (auto rot = g.get_int_or(p + "rope.dimension_count"); rot && *rot != c.head_dim) {
    throw model_error(g.path().string() + ": partial RoPE (rope.dimension_count " + std::to_string(*rot) +
                      " != head_dim " + std::to_string(c.head_dim) + ") is not supported");
  }
  if (auto st = g.get_string_or(p + "rope.scaling.type"); st && *st != "none") {
    if (*st == "linear") {
      c.scaling.type = rope_scaling::kind::linear;
      c.scaling.factor = static_cast<float>(g.get_float(p + "rope.scaling.factor"));
    } else {
      throw model_error(g.path().string() + ": rope scaling '" + *st + "' is not supported");
    }
  }
  // The embedding's row count is what the weights hold; the metadata only says it.
  if (const gguf_tensor_info* e = g.find_tensor("token_embd.weight"); e && e->ne.size() == 2) {
    c.vocab_size = static_cast<int32_t>(e->ne[1]);
  } else if (auto v = g.get_int_or(p + "vocab_size")) {
    c.vocab_size = static_cast<int32_t>(*v);
  } else if (const gguf_value* toks = g.find("tokenizer.ggml.tokens")) {
    c.vocab_size = static_cast<int32_t>(toks->array_size);
  }
  c.bos_token_id = static_cast<int32_t>(g.get_int_or("tokenizer.ggml.bos_token_id").value_or(1));
  c.eos_token_ids = {static_cast<int32_t>(g.get_int_or("tokenizer.ggml.eos_token_id").value_or(2))};
  c.tie_word_embeddings = g.find_tensor("output.weight") == nullptr;
  c.rope = rope_style::adjacent_pairs;
  c.validate(g.path().string());
  return c;
}

}  // namespace moat::engine

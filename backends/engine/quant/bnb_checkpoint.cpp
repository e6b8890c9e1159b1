#include "engine/quant/bnb_checkpoint.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>

#include "engine/quant/nf4.h"

namespace moat::engine::quant {
namespace {

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument("bitsandbytes quant_state: " + what);
}

[[noreturn]] void bad_weight(const std::string& name, const std::string& what) {
  throw std::invalid_argument("bitsandbytes weight " + name + ": " + what);
}

// F32 tensors of a safetensors file need not be 4-byte aligned in the mapping (the header and
// U8 neighbours set the offsets), so they are copied out rather than read through a float*.
std::vector<float> f32_values(const raw_tensor* t) {
  std::vector<float> v;
  if (t == nullptr) return v;
  v.resize(t->bytes / sizeof(float));
  if (!v.empty()) std::memcpy(v.data(), t->data, v.size() * sizeof(float));
  return v;
}

}  // namespace

size_t bnb_nf4_state::numel() const {
  size_t n = 1;
  for (size_t d : shape) n *= d;
  return n;
}

bnb_nf4_state parse_bnb_quant_state(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS) bad("not valid JSON");
  simdjson::dom::object obj;
  if (root.get_object().get(obj) != simdjson::SUCCESS) bad("not a JSON object");
  bnb_nf4_state st;
  std::string_view s;
  if (obj["quant_type"].get_string().get(s) != simdjson::SUCCESS) bad("missing quant_type");
  st.quant_type = s;
  if (st.quant_type != "nf4") bad("quant_type '" + st.quant_type + "' is not supported (only nf4)");
  uint64_t u = 0;
  if (obj["blocksize"].get_uint64().get(u) != simdjson::SUCCESS) bad("missing blocksize");
  if (u < 32 || u > 4096 || (u & (u - 1)) != 0) bad("blocksize " + std::to_string(u) + " is not a power of two in 32..4096");
  st.blocksize = u;
  if (obj["dtype"].get_string().get(s) != simdjson::SUCCESS) bad("missing dtype");
  st.dtype = s;
  simdjson::dom::array shape;
  if (obj["shape"].get_array().get(shape) != simdjson::SUCCESS) bad("missing shape");
  // The element count must fit comfortably (2^48) so no size computed from it can overflow.
  uint64_t numel = 1;
  for (simdjson::dom::element d : shape) {
    if (d.get_uint64().get(u) != simdjson::SUCCESS) bad("shape holds a non-integer");
    if (u != 0 && numel > (uint64_t{1} << 48) / u) bad("shape is too large");
    numel *= u;
    st.shape.push_back(u);
  }
  if (st.shape.empty()) bad("shape is empty");
  double offset = 0.0;
  if (obj["nested_offset"].get_double().get(offset) == simdjson::SUCCESS) {
    st.nested = true;
    st.nested_offset = static_cast<float>(offset);  // printed from a float: converts back exactly
    if (obj["nested_blocksize"].get_uint64().get(u) != simdjson::SUCCESS || u == 0 || u > 65536) {
      bad("missing or invalid nested_blocksize");
    }
    if (!std::isfinite(offset)) bad("nested_offset is not finite");
    st.nested_blocksize = u;
  }
  return st;
}

std::vector<float> bnb_absmax(const bnb_nf4_state& st, const uint8_t* absmax_codes, const float* absmax_f32,
                              size_t blocks, const float* nested_absmax, size_t nested_count,
                              const float* nested_quant_map, const float* quant_map) {
  if (blocks != nf4_blocks(st.numel(), st.blocksize)) {
    bad("absmax has " + std::to_string(blocks) + " values, the shape needs " +
        std::to_string(nf4_blocks(st.numel(), st.blocksize)));
  }
  if (quant_map != nullptr) {
    for (size_t i = 0; i < 16; ++i) {
      if (quant_map[i] != nf4_code[i]) bad("quant_map is not the NF4 table");
    }
  }
  std::vector<float> absmax(blocks);
  if (!st.nested) {
    if (absmax_f32 == nullptr) bad("absmax (f32) missing");
    absmax.assign(absmax_f32, absmax_f32 + blocks);
    return absmax;
  }
  if (absmax_codes == nullptr || nested_absmax == nullptr || nested_quant_map == nullptr) {
    bad("a double-quantized tensor needs absmax (u8), nested_absmax and nested_quant_map");
  }
  if (nested_count != (blocks + st.nested_blocksize - 1) / st.nested_blocksize) {
    bad("nested_absmax has " + std::to_string(nested_count) + " values, expected " +
        std::to_string((blocks + st.nested_blocksize - 1) / st.nested_blocksize));
  }
  dequantize_blockwise_8bit(absmax_codes, nested_absmax, nested_quant_map, blocks, st.nested_blocksize,
                            st.nested_offset, absmax.data());
  return absmax;
}

std::map<std::string, bnb_nf4_weight> collect_bnb_nf4(const std::map<std::string, raw_tensor>& tensors) {
  static const std::string suffix = ".quant_state.bitsandbytes__nf4";
  std::map<std::string, bnb_nf4_weight> out;
  for (const auto& [key, state_tensor] : tensors) {
    if (key.size() <= suffix.size() || key.compare(key.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string name = key.substr(0, key.size() - suffix.size());
    auto find = [&](const std::string& part, const char* dtype, size_t elem_bytes) -> const raw_tensor* {
      const auto it = tensors.find(part.empty() ? name : name + "." + part);
      if (it == tensors.end()) return nullptr;
      if (it->second.dtype != dtype) bad_weight(name, (part.empty() ? "the weight" : part) + " is " + it->second.dtype + ", expected " + dtype);
      if (it->second.bytes % elem_bytes != 0) bad_weight(name, part + " has a partial element");
      return &it->second;
    };
    // Errors of the state and statistics name the weight they belong to.
    auto named = [&](auto&& f) {
      try {
        return f();
      } catch (const std::invalid_argument& e) {
        bad_weight(name, e.what());
      }
    };
    bnb_nf4_weight w;
    w.state = named([&] { return parse_bnb_quant_state({reinterpret_cast<const char*>(state_tensor.data), state_tensor.bytes}); });
    const size_t numel = w.state.numel();
    const size_t blocks = nf4_blocks(numel, w.state.blocksize);
    const raw_tensor* packed = find("", "U8", 1);
    if (packed == nullptr) bad_weight(name, "the packed weight tensor is missing");
    if (packed->bytes != (numel + 1) / 2) {
      bad_weight(name, "packed weight has " + std::to_string(packed->bytes) + " bytes, the shape needs " + std::to_string((numel + 1) / 2));
    }
    w.packed = packed->data;
    const raw_tensor* quant_map = find("quant_map", "F32", 4);
    if (quant_map != nullptr && quant_map->bytes != 16 * 4) bad_weight(name, "quant_map does not hold 16 values");
    const std::vector<float> qmap_values = f32_values(quant_map);
    const float* qmap = quant_map ? qmap_values.data() : nullptr;
    if (w.state.nested) {
      const raw_tensor* codes = find("absmax", "U8", 1);
      const raw_tensor* nested = find("nested_absmax", "F32", 4);
      const raw_tensor* nested_map = find("nested_quant_map", "F32", 4);
      if (codes == nullptr || nested == nullptr || nested_map == nullptr) {
        bad_weight(name, "absmax, nested_absmax or nested_quant_map is missing");
      }
      if (nested_map->bytes != 256 * 4) bad_weight(name, "nested_quant_map does not hold 256 values");
      const std::vector<float> nested_values = f32_values(nested), nested_map_values = f32_values(nested_map);
      w.absmax = named([&] {
        return bnb_absmax(w.state, codes->data, nullptr, codes->bytes, nested_values.data(), nested_values.size(),
                          nested_map_values.data(), qmap);
      });
    } else {
      const raw_tensor* absmax = find("absmax", "F32", 4);
      if (absmax == nullptr) bad_weight(name, "absmax is missing");
      const std::vector<float> absmax_values = f32_values(absmax);
      w.absmax = named([&] {
        return bnb_absmax(w.state, nullptr, absmax_values.data(), absmax_values.size(), nullptr, 0, nullptr, qmap);
      });
    }
    if (w.absmax.size() != blocks) bad_weight(name, "absmax size does not match the shape");
    out.emplace(name, std::move(w));
  }
  return out;
}

void quantize_bnb_int8_row(const float* x, size_t n, int8_t* q, float* scb) {
  float amax = 0.0f;
  for (size_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  *scb = amax;
  // torch: A * (127.0 / row_stats), rounded half to even (the default rounding mode). An
  // all-zero row (0 * inf in torch) is stored as zeros here.
  const float k = amax > 0.0f ? 127.0f / amax : 0.0f;
  for (size_t i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::clamp(std::nearbyint(x[i] * k), -127.0f, 127.0f));
}

void dequantize_bnb_int8(const int8_t* q, const float* scb, size_t rows, size_t cols, float* out) {
  const float inv127 = 7.874015718698502e-3f;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) out[r * cols + c] = static_cast<float>(q[r * cols + c]) * scb[r] * inv127;
  }
}

}  // namespace moat::engine::quant

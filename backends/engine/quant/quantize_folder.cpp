#include "engine/quant/quantize_folder.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "engine/quant/nf4.h"
#include "engine/quant/quantize_rows.h"
#include "engine/quant/safetensors_writer.h"
#include "engine/safetensors.h"
#include "engine/tensor.h"
#include "engine/weight_storage.h"

namespace moat::engine::quant {
namespace {

namespace fs = std::filesystem;

const char* safetensors_dtype(dtype t) {
  switch (t) {
    case dtype::f32: return "F32";
    case dtype::f16: return "F16";
    case dtype::bf16: return "BF16";
    default: return nullptr;
  }
}

const char* torch_dtype(dtype t) {
  switch (t) {
    case dtype::f16: return "float16";
    case dtype::bf16: return "bfloat16";
    default: return "float32";
  }
}

template <typename T>
std::span<const uint8_t> bytes_of(const std::vector<T>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(T)};
}

// The buffers of one quantized weight, kept alive until the file is written.
struct nf4_outputs {
  std::vector<uint8_t> packed;
  std::vector<uint8_t> codes;
  std::vector<float> nested_absmax;
  std::vector<float> nested_map;
  std::vector<float> quant_map;
  std::vector<uint8_t> state_json;
};

// The first level on `threads` threads (quantize_rows: the bytes quantize_nf4 gives, without an
// f32 copy of the whole matrix), then the double quantization of its absmax.
std::unique_ptr<nf4_outputs> quantize_weight(const tensor& t, unsigned threads) {
  const auto rows = static_cast<size_t>(t.rows()), cols = static_cast<size_t>(t.cols());
  auto out = std::make_unique<nf4_outputs>();
  std::vector<float> absmax;
  if (cols % 2 != 0) {
    // Rows that do not start on a byte (bitsandbytes packs the flattened tensor): one thread.
    std::vector<float> values(rows * cols);
    for (size_t r = 0; r < rows; ++r) t.row_to_f32(static_cast<int64_t>(r), values.data() + r * cols);
    nf4_tensor q = quantize_nf4(values.data(), values.size());
    out->packed = std::move(q.packed);
    absmax = std::move(q.absmax);
  } else {
    out->packed.resize(quantized_bytes(row_format::nf4, rows, cols));
    absmax.resize(quantized_scales(row_format::nf4, rows, cols));
    quantize_rows(
        row_format::nf4, rows, cols,
        [&t, cols](size_t r0, size_t r1, float* values) {
          for (size_t r = r0; r < r1; ++r) t.row_to_f32(static_cast<int64_t>(r), values + (r - r0) * cols);
        },
        out->packed.data(), absmax.data(), threads);
  }
  const nf4_double_quant dq = double_quantize(absmax.data(), absmax.size());
  out->codes = dq.codes;
  out->nested_absmax = dq.absmax2;
  out->nested_map.assign(dq.code.begin(), dq.code.end());
  out->quant_map.assign(nf4_code.begin(), nf4_code.end());
  // The JSON bitsandbytes' QuantState.as_dict(packed=True) writes; %.9g prints the float so it
  // reads back exactly.
  char offset[32];
  std::snprintf(offset, sizeof offset, "%.9g", static_cast<double>(dq.offset));
  std::ostringstream json;
  json << "{\"quant_type\": \"nf4\", \"blocksize\": " << nf4_blocksize << ", \"dtype\": \"" << torch_dtype(t.type)
       << "\", \"shape\": [";
  for (size_t i = 0; i < t.shape.size(); ++i) json << (i ? ", " : "") << t.shape[i];
  json << "], \"nested_blocksize\": " << nf4_nested_blocksize << ", \"nested_dtype\": \"float32\", \"nested_offset\": "
       << offset << "}";
  const std::string s = json.str();
  out->state_json.assign(s.begin(), s.end());
  return out;
}

// config.json with a bitsandbytes quantization_config, so transformers (and moat's loader)
// know what the weights are. Inserted before the closing brace; refuses a config that already
// names a quantization.
std::string quantized_config(const std::string& config, const std::string& compute_dtype) {
  if (config.find("\"quantization_config\"") != std::string::npos) {
    throw std::runtime_error("config.json already has a quantization_config (the model is already quantized)");
  }
  const size_t close = config.rfind('}');
  if (close == std::string::npos) throw std::runtime_error("config.json is not a JSON object");
  const std::string q =
      ",\n  \"quantization_config\": {\"quant_method\": \"bitsandbytes\", \"load_in_4bit\": true, "
      "\"load_in_8bit\": false, \"bnb_4bit_quant_type\": \"nf4\", \"bnb_4bit_use_double_quant\": true, "
      "\"bnb_4bit_compute_dtype\": \"" +
      compute_dtype + "\", \"bnb_4bit_quant_storage\": \"uint8\", \"llm_int8_skip_modules\": [\"lm_head\"]}\n";
  size_t end = close;
  while (end > 0 && (config[end - 1] == ' ' || config[end - 1] == '\n' || config[end - 1] == '\r' || config[end - 1] == '\t')) --end;
  return config.substr(0, end) + q + config.substr(close);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

bool is_quantized_linear(const std::string& name, size_t dims) {
  const std::string suffix = ".weight";
  if (dims != 2 || name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  return name.find("embed_tokens") == std::string::npos && name.find("lm_head") == std::string::npos &&
         name.find("norm") == std::string::npos && name.find("wte") == std::string::npos;
}

quantize_report quantize_model_folder(const fs::path& in, const fs::path& out, const quantize_folder_options& opt) {
  if (opt.format != "nf4") throw std::runtime_error("format '" + opt.format + "' cannot be written yet (only nf4)");
  if (!fs::is_directory(in)) throw std::runtime_error(in.string() + " is not a model folder");
  if (fs::exists(out) && fs::equivalent(in, out)) throw std::runtime_error("the output folder must differ from the input");

  weight_storage storage;
  std::map<std::string, tensor, std::less<>> tensors;
  if (fs::exists(in / "model.safetensors.index.json")) {
    read_safetensors_index(in / "model.safetensors.index.json", storage, tensors);
  } else if (fs::exists(in / "model.safetensors")) {
    read_safetensors(in / "model.safetensors", storage, tensors);
  } else {
    throw std::runtime_error(in.string() + " has no model.safetensors or model.safetensors.index.json");
  }

  const unsigned threads = opt.threads != 0 ? opt.threads : std::max(1u, std::thread::hardware_concurrency());
  quantize_report report;
  std::vector<std::unique_ptr<nf4_outputs>> keep;
  std::vector<safetensors_entry> entries;
  std::string compute_dtype = "float32";
  size_t done = 0;
  for (const auto& [name, t] : tensors) {
    ++report.tensors;
    report.bytes_in += t.bytes();
    const char* st_dtype = safetensors_dtype(t.type);
    if (st_dtype == nullptr) throw std::runtime_error(name + ": dtype " + std::string(dtype_name(t.type)) + " cannot be requantized");
    if (!is_quantized_linear(name, t.shape.size())) {
      entries.push_back({name, st_dtype, t.shape, {static_cast<const uint8_t*>(t.data), t.bytes()}});
    } else {
      compute_dtype = torch_dtype(t.type);
      keep.push_back(quantize_weight(t, threads));
      // Its source is read for the last time: give its pages back (re-read from the file if
      // touched again), so the resident set holds the outputs, not the whole input as well.
      for (const auto& map : storage.maps) map->release(t.data, t.bytes());
      const nf4_outputs& q = *keep.back();
      const auto n = static_cast<int64_t>(q.packed.size());
      entries.push_back({name, "U8", {n, 1}, bytes_of(q.packed)});
      entries.push_back({name + ".absmax", "U8", {static_cast<int64_t>(q.codes.size())}, bytes_of(q.codes)});
      entries.push_back({name + ".nested_absmax", "F32", {static_cast<int64_t>(q.nested_absmax.size())}, bytes_of(q.nested_absmax)});
      entries.push_back({name + ".nested_quant_map", "F32", {256}, bytes_of(q.nested_map)});
      entries.push_back({name + ".quant_map", "F32", {16}, bytes_of(q.quant_map)});
      entries.push_back({name + ".quant_state.bitsandbytes__nf4", "U8", {static_cast<int64_t>(q.state_json.size())},
                         bytes_of(q.state_json)});
      ++report.quantized;
    }
    if (opt.progress) opt.progress(++done, tensors.size());
  }

  fs::create_directories(out);
  write_safetensors(out / "model.safetensors", entries);
  for (const safetensors_entry& e : entries) report.bytes_out += e.data.size();

  for (const fs::directory_entry& f : fs::directory_iterator(in)) {
    const std::string fname = f.path().filename().string();
    if (!f.is_regular_file() || f.path().extension() == ".safetensors" || fname == "model.safetensors.index.json") continue;
    if (fname == "config.json") {
      std::ofstream cfg(out / fname, std::ios::binary | std::ios::trunc);
      cfg << quantized_config(read_file(f.path()), compute_dtype);
      if (!cfg) throw std::runtime_error("cannot write " + (out / fname).string());
    } else {
      fs::copy_file(f.path(), out / fname, fs::copy_options::overwrite_existing);
    }
  }
  return report;
}

}  // namespace moat::engine::quant

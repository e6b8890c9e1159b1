// The shared `options:` keys of a served model (serving.h lists them) and the log prefix.
#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include <fmt/format.h>
#include <simdjson.h>

#include "engine/option_values.h"
#include "engine/serving.h"

namespace moat::engine {


serving_options parse_serving_options(std::string_view json, const std::vector<std::string>& own_keys,
                                      std::vector<std::string>& ignored) {
  serving_options o;
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json.empty() ? std::string_view("{}") : json);
  simdjson::dom::object obj;
  if (parser.parse(padded).get_object().get(obj) != simdjson::SUCCESS)
    throw std::invalid_argument("options: expected a map");
  bool has_path = false;
  for (auto [key, value] : obj) {
    if (key == "path") {
      std::string_view s;
      if (value.get_string().get(s) != simdjson::SUCCESS || s.empty())
        throw std::invalid_argument("options.path: expected the model's folder or file");
      o.path = std::string(s);
      has_path = true;
    } else if (key == "threads") {
      o.threads = static_cast<int32_t>(option_int(value, key, 0, 1024));
    } else if (key == "max_batch") {
      o.max_batch = static_cast<int32_t>(option_int(value, key, 1, 4096));
    } else if (key == "ctx") {
      o.ctx = static_cast<int32_t>(option_int(value, key, 0, 1 << 24));
    } else if (key == "kv_cache_mb") {
      o.kv_cache_mb = option_int(value, key, 1, 1 << 24);
    } else if (key == "host_kv_mb") {
      o.host_kv_mb = option_int(value, key, 0, int64_t{1} << 30);
    } else if (key == "max_queue") {
      o.max_queue = static_cast<int32_t>(option_int(value, key, 0, 1 << 24));
    } else if (key == "prefill_chunk") {
      o.prefill_chunk = static_cast<int32_t>(option_int(value, key, 1, 1 << 20));
    } else if (key == "reference") {
      bool b = false;
      if (value.get_bool().get(b) != simdjson::SUCCESS)
        throw std::invalid_argument("options.reference: expected true or false");
      o.reference = b;
    } else if (key == "seed") {
      o.seed = static_cast<uint64_t>(option_int(value, key, 0, INT64_MAX));
    } else if (key == "chat_template") {
      std::string_view s;
      if (value.get_string().get(s) != simdjson::SUCCESS)
        throw std::invalid_argument("options.chat_template: expected a built-in template name");
      o.chat_template = std::string(s);
    } else if (key == "key_file" || key == "key_env") {
      // Read again by key_option() (serving_options has no field for them); checked here so a
      // bad value fails with the others and the key is not reported as an unknown option.
      std::string_view s;
      if (value.get_string().get(s) != simdjson::SUCCESS || s.empty())
        throw std::invalid_argument(fmt::format("options.{}: expected a file path or a variable name", key));
    } else if (key == "kv_block_size") {
      o.kv_block_size = static_cast<int32_t>(option_int(value, key, 1, 1 << 16));
    } else if (key == "prefix_caching") {
      bool b = true;
      if (value.get_bool().get(b) != simdjson::SUCCESS)
        throw std::invalid_argument("options.prefix_caching: expected true or false");
      o.prefix_caching = b;
    } else if (key == "kv_dtype") {
      std::string_view s;
      if (value.get_string().get(s) != simdjson::SUCCESS || (s != "f32" && s != "int8"))
        throw std::invalid_argument("options.kv_dtype: expected f32 or int8");
      o.kv_dtype = std::string(s);
    } else if (key == "quant") {
      std::string_view s;
      if (value.get_string().get(s) != simdjson::SUCCESS ||
          (s != "none" && s != "f32" && s != "int8" && s != "int4" && s != "nf4"))
        throw std::invalid_argument("options.quant: expected int8, int4, nf4 or none");
      o.quant = (s == "none" || s == "f32") ? std::string() : std::string(s);
    } else if (std::find(own_keys.begin(), own_keys.end(), key) == own_keys.end()) {
      ignored.emplace_back(key);
    }
  }
  if (!has_path) throw std::invalid_argument("options.path: missing (the model's folder or file)");
  return o;
}

void serving_logger::operator()(moat_log_level level, const std::string& message) const {
  if (!fn_) return;
  const std::string line = fmt::format("{}: {}", prefix_, message);
  fn_(user_, level, {line.data(), line.size()});
}

}  // namespace moat::engine

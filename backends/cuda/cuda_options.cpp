#include "cuda_options.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "engine/option_values.h"

namespace moat::cuda {

namespace {

double as_double(simdjson::dom::element v, std::string_view key, double lo, double hi) {
  double d = 0;
  int64_t i = 0;
  if (v.get_double().get(d) != simdjson::SUCCESS) {
    if (v.get_int64().get(i) != simdjson::SUCCESS) throw std::invalid_argument(fmt::format("options.{}: expected a number", key));
    d = static_cast<double>(i);
  }
  if (!(d >= lo && d <= hi)) throw std::invalid_argument(fmt::format("options.{}: {} is outside {}..{}", key, d, lo, hi));
  return d;
}

}  // namespace

cuda_plugin_options parse_cuda_options(std::string_view options_json) {
  cuda_plugin_options o;
  simdjson::dom::parser parser;
  simdjson::padded_string padded(options_json.empty() ? std::string_view("{}") : options_json);
  simdjson::dom::object obj;
  if (parser.parse(padded).get_object().get(obj) != simdjson::SUCCESS) throw std::invalid_argument("options: expected a map");
  int64_t device = 0;
  bool have_devices = false, have_tp = false;
  for (auto [key, value] : obj) {
    if (key == "device") {
      device = engine::option_int(value, key, 0, 1023);
    } else if (key == "tensor_parallel") {
      o.tensor_parallel = static_cast<int32_t>(engine::option_int(value, key, 1, 64));
      have_tp = true;
    } else if (key == "devices") {
      simdjson::dom::array a;
      if (value.get_array().get(a) != simdjson::SUCCESS || a.size() == 0)
        throw std::invalid_argument("options.devices: expected a list of GPU indices, e.g. [0, 1]");
      o.devices.clear();
      for (auto d : a) {
        const auto id = static_cast<int32_t>(engine::option_int(d, "devices[]", 0, 1023));
        if (std::find(o.devices.begin(), o.devices.end(), id) != o.devices.end())
          throw std::invalid_argument(fmt::format("options.devices: GPU {} is listed twice", id));
        o.devices.push_back(id);
      }
      have_devices = true;
    } else if (key == "host_kv_mb") {
      o.host_kv_mb = engine::option_int(value, key, 0, int64_t{1} << 30);
    } else if (key == "cuda_graphs") {
      bool b = true;
      if (value.get_bool().get(b) != simdjson::SUCCESS) throw std::invalid_argument("options.cuda_graphs: expected true or false");
      o.cuda_graphs = b;
    } else if (key == "gpu_warn_temperature_c") {
      o.thresholds.temperature_c = static_cast<uint32_t>(engine::option_int(value, key, 1, 200));
    } else if (key == "gpu_warn_memory_fraction") {
      o.thresholds.memory_fraction = as_double(value, key, 0.01, 1.0);
    }
  }
  if (have_devices && have_tp && static_cast<int32_t>(o.devices.size()) != o.tensor_parallel) {
    throw std::invalid_argument(fmt::format("options.devices: {} GPUs listed for tensor_parallel: {}; give one per rank",
                                            o.devices.size(), o.tensor_parallel));
  }
  if (have_devices) {
    o.tensor_parallel = static_cast<int32_t>(o.devices.size());
  } else if (have_tp) {
    o.devices.clear();
    for (int32_t r = 0; r < o.tensor_parallel; ++r) o.devices.push_back(r);
  } else {
    o.devices = {static_cast<int32_t>(device)};
  }
  return o;
}

}  // namespace moat::cuda

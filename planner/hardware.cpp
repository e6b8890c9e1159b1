#include "hardware.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <iterator>
#include <vector>

#include "formats.h"

namespace moat::planner {

namespace {

double number(const YAML::Node& node, const std::string& where, const char* key, bool required,
              double fallback = 0) {
  const YAML::Node v = node[key];
  if (!v) {
    if (required) throw plan_error(fmt::format("{}: missing '{}'", where, key));
    return fallback;
  }
  double out = 0;
  try {
    out = v.as<double>();
  } catch (const YAML::Exception&) {
    throw plan_error(fmt::format("{}.{} (line {}): not a number", where, key, v.Mark().line + 1));
  }
  if (!(out >= 0))
    throw plan_error(fmt::format("{}.{} (line {}): must not be negative, got {}", where, key,
                                 v.Mark().line + 1, out));
  return out;
}

device parse_device(const std::string& name, const YAML::Node& n, const std::string& where) {
  if (!n.IsMap()) throw plan_error(fmt::format("{}: expected a map of fields", where));
  device d;
  d.name = name;
  d.description = n["description"] ? n["description"].as<std::string>() : name;
  const std::string kind = n["kind"] ? n["kind"].as<std::string>() : "gpu";
  if (kind != "gpu" && kind != "cpu")
    throw plan_error(fmt::format("{}.kind: expected gpu or cpu, got '{}'", where, kind));
  d.is_cpu = kind == "cpu";
  d.memory_gib = number(n, where, "memory_gib", true);
  d.bandwidth_gbps = number(n, where, "bandwidth_gbps", true);
  d.compute_tflops = number(n, where, "compute_tflops", true);
  d.interconnect_gbps = number(n, where, "interconnect_gbps", false);
  d.host_link_gbps = number(n, where, "host_link_gbps", false);
  d.power_w = number(n, where, "power_w", true);
  d.price_usd = number(n, where, "price_usd", true);
  const double per_node = number(n, where, "per_node", false, 1);
  if (per_node < 1 || per_node > 1024 || per_node != static_cast<int>(per_node))
    throw plan_error(fmt::format("{}.per_node: a whole number of devices from 1 to 1024, got {}", where, per_node));
  d.per_node = static_cast<int>(per_node);
  d.node_price_usd = number(n, where, "node_price_usd", false);
  d.node_power_w = number(n, where, "node_power_w", false);
  d.host_memory_gib = number(n, where, "host_memory_gib", false);
  d.runtime_overhead_gib = number(n, where, "runtime_overhead_gib", false, 1.0);
  d.decode_bandwidth_efficiency = number(n, where, "decode_bandwidth_efficiency", false, 0.7);
  d.prefill_compute_efficiency = number(n, where, "prefill_compute_efficiency", false, 0.5);
  if (d.memory_gib <= 0 || d.bandwidth_gbps <= 0 || d.compute_tflops <= 0 || d.per_node < 1)
    throw plan_error(fmt::format("{}: memory_gib, bandwidth_gbps, compute_tflops and per_node "
                                 "must be positive", where));
  for (double f : {d.decode_bandwidth_efficiency, d.prefill_compute_efficiency})
    if (f <= 0 || f > 1)
      throw plan_error(fmt::format("{}: efficiency factors lie in (0, 1], got {}", where, f));
  return d;
}

}  // namespace

void catalogue::merge_yaml(std::string_view text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    throw plan_error(fmt::format("{}: {}", source, e.what()));
  }
  const YAML::Node list = root["devices"];
  if (!list || !list.IsMap())
    throw plan_error(fmt::format("{}: expected a top-level 'devices:' map", source));
  try {
    for (const auto& kv : list) {
      const std::string name = kv.first.as<std::string>();
      const std::string where = fmt::format("{}: devices.{}", source, name);
      devices_[name] = parse_device(name, kv.second, where);
    }
  } catch (const YAML::Exception& e) {
    throw plan_error(fmt::format("{}: {}", source, e.what()));
  }
}

void catalogue::merge_yaml_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw plan_error(fmt::format("--hardware {}: cannot read the file", path));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  merge_yaml(text, path);
}

const device& catalogue::find(std::string_view name) const {
  const auto it = devices_.find(std::string(name));
  if (it != devices_.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [n, d] : devices_) names.push_back(n);
  throw plan_error(fmt::format("--gpu '{}': unknown device; the catalogue has {} (add more with "
                               "--hardware FILE.yaml)", name, fmt::join(names, ", ")));
}

catalogue builtin_catalogue() {
  catalogue c;
  c.merge_yaml(builtin_catalogue_yaml(), "config/hardware.yaml (built in)");
  return c;
}

}  // namespace moat::planner

#include "cost.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <iterator>

#include "formats.h"

namespace moat::planner {

namespace {

void read(const YAML::Node& node, const char* key, double& out, const std::string& where) {
  const YAML::Node v = node[key];
  if (!v) return;
  double x = 0;
  try {
    x = v.as<double>();
  } catch (const YAML::Exception&) {
    throw plan_error(fmt::format("{}: {} (line {}) is not a number", where, key, v.Mark().line + 1));
  }
  if (!(x >= 0))
    throw plan_error(fmt::format("{}: {} (line {}) must not be negative, got {}", where, key,
                                 v.Mark().line + 1, x));
  out = x;
}

}  // namespace

cost_inputs parse_costs(std::string_view yaml, const std::string& source) {
  cost_inputs in;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    throw plan_error(fmt::format("{}: {}", source, e.what()));
  }
  if (root.IsNull()) return in;
  if (!root.IsMap()) throw plan_error(fmt::format("{}: expected a map of cost fields", source));
  read(root, "amortization_years", in.amortization_years, source);
  read(root, "electricity_usd_per_kwh", in.electricity_usd_per_kwh, source);
  read(root, "pue", in.pue, source);
  read(root, "rack_network_usd_per_month", in.rack_network_usd_per_month, source);
  read(root, "software_usd_per_month", in.software_usd_per_month, source);
  read(root, "staff_usd_per_month", in.staff_usd_per_month, source);
  read(root, "utilization", in.utilization, source);
  if (const YAML::Node cloud = root["cloud"]) {
    read(cloud, "input_usd_per_million", in.cloud_input_usd_per_million, source + " cloud");
    read(cloud, "output_usd_per_million", in.cloud_output_usd_per_million, source + " cloud");
    read(cloud, "input_output_ratio", in.input_output_ratio, source + " cloud");
  }
  if (in.amortization_years <= 0) throw plan_error(fmt::format("{}: amortization_years must be > 0", source));
  if (in.pue < 1) throw plan_error(fmt::format("{}: pue is at least 1, got {}", source, in.pue));
  if (in.utilization <= 0 || in.utilization > 1)
    throw plan_error(fmt::format("{}: utilization lies in (0, 1], got {}", source, in.utilization));
  return in;
}

cost_inputs load_costs_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw plan_error(fmt::format("--costs {}: cannot read the file", path));
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return parse_costs(text, path);
}

cost_result compute_cost(const cost_inputs& in, const device& d, int devices, const capacity& cap) {
  cost_result c;
  c.servers = (devices + d.per_node - 1) / d.per_node;
  c.capex_usd = devices * d.price_usd + c.servers * d.node_price_usd;
  c.capex_per_month = c.capex_usd / (in.amortization_years * 12.0);
  // Nameplate power, all hours: a fleet is budgeted for its peak draw.
  c.power_kw = (devices * d.power_w + c.servers * d.node_power_w) / 1000.0 * in.pue;
  c.energy_per_month = c.power_kw * hours_per_month * in.electricity_usd_per_kwh;
  c.rack_per_month = c.servers * in.rack_network_usd_per_month;
  c.cost_per_month = c.capex_per_month + c.energy_per_month + c.rack_per_month +
                     in.software_usd_per_month + in.staff_usd_per_month;

  const double r = in.input_output_ratio;
  c.cloud_usd_per_million = (r * in.cloud_input_usd_per_million + in.cloud_output_usd_per_million) / (1.0 + r);
  if (cap.decode_tokens_per_s > 0 && cap.prefill_tokens_per_s > 0) {
    // One output token costs 1/decode seconds of the deployment, and brings r input tokens that
    // cost r/prefill seconds: (1 + r) tokens per (1/decode + r/prefill) seconds.
    const double seconds_per_output = 1.0 / cap.decode_tokens_per_s + r / cap.prefill_tokens_per_s;
    c.tokens_per_month_max = hours_per_month * 3600.0 / seconds_per_output * (1.0 + r);
    c.tokens_per_month = c.tokens_per_month_max * in.utilization;
    c.cost_per_million_tokens = c.cost_per_month / (c.tokens_per_month / 1e6);
  }
  if (c.cloud_usd_per_million > 0 && c.tokens_per_month_max > 0) {
    // The cloud bill equals the fixed monthly cost at V = cost / price. Beyond one deployment's
    // capacity each copy costs as much again and serves at most as much, so if one copy at full
    // load cannot reach V, no number of copies breaks even.
    const double v = c.cost_per_month / c.cloud_usd_per_million * 1e6;
    if (v <= c.tokens_per_month_max) {
      c.break_even_tokens_per_month = v;
      c.break_even_utilization = v / c.tokens_per_month_max;
    }
  }
  return c;
}

double local_cost_at(const cost_result& c, double tokens_per_month) {
  if (c.tokens_per_month_max <= 0) return c.cost_per_month;
  const double copies = std::max(1.0, std::ceil(tokens_per_month / c.tokens_per_month_max));
  return copies * c.cost_per_month;
}

}  // namespace moat::planner

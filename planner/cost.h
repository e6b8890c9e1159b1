// Cost of owning a deployment per month, per million tokens, and the monthly volume at which it
// breaks even with a per-token cloud price.
//
//   cost_inputs in = load_costs_file("costs.yaml");    // or cost_inputs{} for the defaults
//   cost_result c = compute_cost(in, dev, /*devices=*/8, capacity);
//   c.break_even_tokens_per_month;   // nullopt when even full load cannot break even
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "hardware.h"

namespace moat::planner {

// Every figure in USD. The defaults are examples, to be replaced by the operator's own.
struct cost_inputs {
  double amortization_years = 3;
  double electricity_usd_per_kwh = 0.15;
  double pue = 1.3;                            // facility power / IT power
  double rack_network_usd_per_month = 1000;    // per server: space, cooling share, network
  double software_usd_per_month = 0;           // licences, whole deployment
  double staff_usd_per_month = 0;              // the share of people running it
  double utilization = 0.5;                    // fraction of capacity that serves tokens
  double cloud_input_usd_per_million = 2.5;
  double cloud_output_usd_per_million = 10.0;
  double input_output_ratio = 3.0;             // input tokens per output token
};

// Reads the YAML fields named as above, the cloud prices under `cloud:` as
// input_usd_per_million / output_usd_per_million / input_output_ratio. Missing keys keep their
// defaults; a negative or non-numeric value, or a utilization outside (0, 1], is a plan_error.
cost_inputs parse_costs(std::string_view yaml, const std::string& source);
cost_inputs load_costs_file(const std::string& path);

// What the deployment can serve, from the speed estimate.
struct capacity {
  double decode_tokens_per_s = 0;   // aggregate output tokens/s
  double prefill_tokens_per_s = 0;  // aggregate input tokens/s
};

inline constexpr double hours_per_month = 730.0;  // 8760 / 12

struct cost_result {
  int servers = 0;
  double capex_usd = 0;
  double capex_per_month = 0;
  double energy_per_month = 0;
  double power_kw = 0;               // at the wall, PUE included
  double rack_per_month = 0;
  double cost_per_month = 0;         // all of the above plus software and staff
  double tokens_per_month_max = 0;   // input + output at 100% utilization and the given mix
  double tokens_per_month = 0;       // at the given utilization
  double cost_per_million_tokens = 0;
  double cloud_usd_per_million = 0;  // blended over the input/output mix
  std::optional<double> break_even_tokens_per_month;
  std::optional<double> break_even_utilization;
};

cost_result compute_cost(const cost_inputs& in, const device& d, int devices, const capacity& cap);

// Local cost of serving `tokens` a month with as many copies of the deployment as it takes.
double local_cost_at(const cost_result& c, double tokens_per_month);

}  // namespace moat::planner

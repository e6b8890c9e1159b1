// Monthly cost, cost per million tokens and break-even volume against a hand calculation.
#include <gtest/gtest.h>

#include "cost.h"
#include "formats.h"

namespace moat::planner {
namespace {

device test_device() {
  device d;
  d.name = "test";
  d.price_usd = 10000;
  d.node_price_usd = 20000;
  d.per_node = 8;
  d.power_w = 500;
  d.node_power_w = 1000;
  return d;
}

cost_inputs test_costs() {
  cost_inputs in;
  in.amortization_years = 2;
  in.electricity_usd_per_kwh = 0.2;
  in.pue = 1.5;
  in.rack_network_usd_per_month = 1000;
  in.software_usd_per_month = 500;
  in.staff_usd_per_month = 1500;
  in.utilization = 0.5;
  in.cloud_input_usd_per_million = 2;
  in.cloud_output_usd_per_million = 8;
  in.input_output_ratio = 3;
  return in;
}

TEST(cost, break_even_against_a_hand_calculation) {
  const cost_result c = compute_cost(test_costs(), test_device(), 8, capacity{1000, 10000});
  // Hardware: 8 * 10,000 + 1 server * 20,000 = 100,000 over 24 months = 4,166.67 a month.
  // Power: (8 * 500 + 1,000) W * 1.5 PUE = 7.5 kW; * 730 h * 0.2 = 1,095 a month.
  // Rack 1,000 + software 500 + staff 1,500.  Total 8,261.67.
  EXPECT_EQ(c.servers, 1);
  EXPECT_NEAR(c.capex_per_month, 100000.0 / 24, 1e-9);
  EXPECT_NEAR(c.power_kw, 7.5, 1e-12);
  EXPECT_NEAR(c.energy_per_month, 1095, 1e-9);
  const double monthly = 100000.0 / 24 + 1095 + 1000 + 500 + 1500;
  EXPECT_NEAR(c.cost_per_month, monthly, 1e-9);
  // Cloud: 3 input tokens per output token: (3 * 2 + 8) / 4 = 3.5 USD per million tokens.
  EXPECT_DOUBLE_EQ(c.cloud_usd_per_million, 3.5);
  // Break-even where 3.5 * V / 1e6 = 8,261.67: V = 2.3605e9 tokens a month.
  ASSERT_TRUE(c.break_even_tokens_per_month);
  EXPECT_NEAR(*c.break_even_tokens_per_month, monthly / 3.5 * 1e6, 1.0);
  EXPECT_NEAR(*c.break_even_tokens_per_month / 1e9, 2.3605, 0.0001);
  // Capacity: an output token costs 1/1000 s, its 3 inputs 3/10000 s: 4 tokens per 1.3 ms.
  const double max_tokens = 730.0 * 3600 / 0.0013 * 4;
  EXPECT_NEAR(c.tokens_per_month_max, max_tokens, 1.0);
  EXPECT_NEAR(c.tokens_per_month, max_tokens * 0.5, 1.0);
  EXPECT_NEAR(c.cost_per_million_tokens, monthly / (max_tokens * 0.5 / 1e6), 1e-9);
  EXPECT_NEAR(*c.break_even_utilization, monthly / 3.5 * 1e6 / max_tokens, 1e-12);
}

TEST(cost, too_slow_never_breaks_even) {
  // 10 tokens/s cannot earn 8,261 USD a month at 3.5 USD per million tokens.
  const cost_result c = compute_cost(test_costs(), test_device(), 8, capacity{10, 100});
  EXPECT_FALSE(c.break_even_tokens_per_month);
  EXPECT_GT(c.cost_per_million_tokens, c.cloud_usd_per_million);
}

TEST(cost, extra_copies_step_the_local_cost) {
  const cost_result c = compute_cost(test_costs(), test_device(), 8, capacity{1000, 10000});
  EXPECT_DOUBLE_EQ(local_cost_at(c, 1), c.cost_per_month);
  EXPECT_DOUBLE_EQ(local_cost_at(c, c.tokens_per_month_max), c.cost_per_month);
  EXPECT_DOUBLE_EQ(local_cost_at(c, c.tokens_per_month_max * 2.5), 3 * c.cost_per_month);
}

TEST(cost, servers_round_up) {
  const cost_result c = compute_cost(test_costs(), test_device(), 10, capacity{1000, 10000});
  EXPECT_EQ(c.servers, 2);
  EXPECT_DOUBLE_EQ(c.capex_usd, 10 * 10000 + 2 * 20000);
}

TEST(cost, parses_yaml_and_refuses_bad_values) {
  const auto in = parse_costs(R"(
amortization_years: 4
electricity_usd_per_kwh: 0.3
staff_usd_per_month: 12000
cloud: { input_usd_per_million: 1.5, output_usd_per_million: 6, input_output_ratio: 2 }
)", "costs.yaml");
  EXPECT_EQ(in.amortization_years, 4);
  EXPECT_EQ(in.electricity_usd_per_kwh, 0.3);
  EXPECT_EQ(in.staff_usd_per_month, 12000);
  EXPECT_EQ(in.cloud_output_usd_per_million, 6);
  EXPECT_EQ(in.input_output_ratio, 2);
  EXPECT_EQ(in.pue, cost_inputs{}.pue);  // absent: the default
  try {
    parse_costs("cloud:\n  output_usd_per_million: -3\n", "costs.yaml");
    FAIL() << "a negative price was accepted";
  } catch (const plan_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("output_usd_per_million"), std::string::npos) << msg;
    EXPECT_NE(msg.find("line 2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("negative"), std::string::npos) << msg;
  }
  EXPECT_THROW(parse_costs("electricity_usd_per_kwh: -0.1", "c"), plan_error);
  EXPECT_THROW(parse_costs("utilization: 1.5", "c"), plan_error);
  EXPECT_THROW(parse_costs("pue: 0.8", "c"), plan_error);
  EXPECT_THROW(parse_costs("amortization_years: zero", "c"), plan_error);
  EXPECT_THROW(parse_costs("[1, 2", "c"), plan_error);
  EXPECT_THROW(load_costs_file("/nonexistent/costs.yaml"), plan_error);
}

TEST(cost, the_example_file_states_the_defaults) {
  // planner/costs.example.yaml documents the defaults; it must not drift from the code.
  const cost_inputs file = load_costs_file(std::string(MOAT_SOURCE_DIR) + "/planner/costs.example.yaml");
  const cost_inputs defaults;
  EXPECT_EQ(file.amortization_years, defaults.amortization_years);
  EXPECT_EQ(file.electricity_usd_per_kwh, defaults.electricity_usd_per_kwh);
  EXPECT_EQ(file.pue, defaults.pue);
  EXPECT_EQ(file.rack_network_usd_per_month, defaults.rack_network_usd_per_month);
  EXPECT_EQ(file.software_usd_per_month, defaults.software_usd_per_month);
  EXPECT_EQ(file.staff_usd_per_month, defaults.staff_usd_per_month);
  EXPECT_EQ(file.utilization, defaults.utilization);
  EXPECT_EQ(file.cloud_input_usd_per_million, defaults.cloud_input_usd_per_million);
  EXPECT_EQ(file.cloud_output_usd_per_million, defaults.cloud_output_usd_per_million);
  EXPECT_EQ(file.input_output_ratio, defaults.input_output_ratio);
}

}  // namespace
}  // namespace moat::planner

// The hardware catalogue: the built-in devices, user extension, clear errors.
#include <gtest/gtest.h>

#include "formats.h"
#include "hardware.h"

namespace moat::planner {
namespace {

TEST(hardware, builtin_has_the_contract_names) {
  const catalogue c = builtin_catalogue();
  for (const char* n : {"h100-80g", "h200-141g", "a100-40g", "a100-80g", "l40s", "rtx-4090", "cpu-2s"}) {
    const device& d = c.find(n);
    EXPECT_GT(d.memory_gib, 0) << n;
    EXPECT_GT(d.bandwidth_gbps, 0) << n;
    EXPECT_GT(d.price_usd, 0) << n;
  }
  EXPECT_TRUE(c.find("cpu-2s").is_cpu);
  EXPECT_FALSE(c.find("h100-80g").is_cpu);
  EXPECT_EQ(c.find("h100-80g").per_node, 8);
  EXPECT_DOUBLE_EQ(c.find("h100-80g").bandwidth_gbps, 3350);
}

TEST(hardware, unknown_device_names_the_known_ones) {
  const catalogue c = builtin_catalogue();
  try {
    c.find("b200");
    FAIL();
  } catch (const plan_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("unknown device"), std::string::npos) << msg;
    EXPECT_NE(msg.find("h200-141g"), std::string::npos) << msg;
  }
}

TEST(hardware, users_extend_and_override) {
  catalogue c = builtin_catalogue();
  c.merge_yaml(R"(
devices:
  mi300x:
    memory_gib: 192
    bandwidth_gbps: 5300
    compute_tflops: 1307
    power_w: 750
    price_usd: 15000
    per_node: 8
  l40s:
    memory_gib: 45
    bandwidth_gbps: 864
    compute_tflops: 362
    power_w: 350
    price_usd: 6000
)", "mine.yaml");
  EXPECT_DOUBLE_EQ(c.find("mi300x").memory_gib, 192);
  EXPECT_DOUBLE_EQ(c.find("mi300x").decode_bandwidth_efficiency, 0.7);  // a default
  EXPECT_DOUBLE_EQ(c.find("l40s").price_usd, 6000);
  EXPECT_DOUBLE_EQ(c.find("h100-80g").price_usd, builtin_catalogue().find("h100-80g").price_usd);
}

TEST(hardware, bad_entries_are_clear_errors) {
  catalogue c;
  const std::string base = "devices:\n  x:\n    memory_gib: 10\n    bandwidth_gbps: 100\n    compute_tflops: 10\n"
                           "    power_w: 100\n";
  try {
    c.merge_yaml(base + "    price_usd: -5\n", "mine.yaml");
    FAIL() << "a negative price was accepted";
  } catch (const plan_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("devices.x.price_usd"), std::string::npos) << msg;
    EXPECT_NE(msg.find("line 7"), std::string::npos) << msg;
  }
  EXPECT_THROW(c.merge_yaml(base, "mine.yaml"), plan_error);  // price missing
  EXPECT_THROW(c.merge_yaml(base + "    price_usd: 5\n    kind: tpu\n", "m"), plan_error);
  EXPECT_THROW(c.merge_yaml(base + "    price_usd: 5\n    decode_bandwidth_efficiency: 2\n", "m"), plan_error);
  EXPECT_THROW(c.merge_yaml("gpus: []", "m"), plan_error);
  EXPECT_THROW(c.merge_yaml("devices: [", "m"), plan_error);
  EXPECT_THROW(c.merge_yaml_file("/nonexistent.yaml"), plan_error);
  EXPECT_NO_THROW(c.merge_yaml(base + "    price_usd: 5\n", "m"));
}

}  // namespace
}  // namespace moat::planner

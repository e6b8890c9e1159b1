// The host allocator term: which malloc this process runs on, and where its keep is counted (a
// CPU device's total, never a GPU's).
#include "allocator.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "plan.h"
#include "report.h"

namespace moat::planner {
namespace {

std::string read_file(const char* path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

plan_inputs cpu_inputs(allocator a) {
  plan_inputs in;
  in.model = load_model("stories260k");
  in.dev = builtin_catalogue().find("cpu-2s");
  in.weights = weight_format::fp32;
  in.kv = kv_format::fp32;
  in.context = 512;
  in.concurrency = 16;
  in.gpus = 1;
  in.factors = find_factors(in.dev, {});
  in.host_allocator = a;
  return in;
}

TEST(allocator, names_round_trip_and_others_are_refused) {
  for (allocator a : {allocator::glibc, allocator::mimalloc})
    EXPECT_EQ(parse_allocator(name_of(a)), a);
  EXPECT_THROW(parse_allocator("jemalloc"), plan_error);
  EXPECT_THROW(parse_allocator(""), plan_error);
}

TEST(allocator, running_allocator_agrees_with_the_mapped_libraries) {
  // This test binary is not linked with mimalloc; if something preloads it, the answer follows.
  const bool mapped = read_file("/proc/self/maps").find("libmimalloc") != std::string::npos;
  EXPECT_EQ(running_allocator(), mapped ? allocator::mimalloc : allocator::glibc);
}

TEST(allocator, mimalloc_keep_counts_on_cpu_devices_only) {
  EXPECT_EQ(allocator_bytes(allocator::glibc), 0.0);
  const double keep = allocator_bytes(allocator::mimalloc);
  EXPECT_GT(keep, 512.0 * 1024);  // measured ~0.9 MiB for one cpu model (allocator.cpp)
  EXPECT_LT(keep, 2.0 * 1024 * 1024);

  const auto glibc = make_plan(cpu_inputs(allocator::glibc));
  const auto mi = make_plan(cpu_inputs(allocator::mimalloc));
  EXPECT_EQ(glibc.on_device.allocator, 0.0);
  EXPECT_DOUBLE_EQ(mi.on_device.allocator, keep);
  EXPECT_DOUBLE_EQ(mi.on_device.total() - glibc.on_device.total(), keep);
  EXPECT_DOUBLE_EQ(glibc.on_device.kv_room() - mi.on_device.kv_room(), keep);
  EXPECT_DOUBLE_EQ(mi.total_bytes - glibc.total_bytes, keep);
  EXPECT_DOUBLE_EQ(mi.on_device.weights + mi.on_device.kv,
                   glibc.on_device.weights + glibc.on_device.kv);

  // On a GPU the host's malloc holds nothing of the device's memory.
  plan_inputs gpu = cpu_inputs(allocator::mimalloc);
  gpu.dev = builtin_catalogue().find("h100-80g");
  gpu.factors = find_factors(gpu.dev, {});
  EXPECT_EQ(make_plan(gpu).on_device.allocator, 0.0);
}

TEST(allocator, reports_name_the_allocator_and_its_bytes) {
  const auto mi = make_plan(cpu_inputs(allocator::mimalloc));
  const std::string json = render_json(mi);
  EXPECT_NE(json.find("\"allocator\": \"mimalloc\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"allocator_bytes\": 921600"), std::string::npos) << json;
  EXPECT_NE(render_table(mi).find("allocator (mimalloc)"), std::string::npos);
  const std::string glibc = render_json(make_plan(cpu_inputs(allocator::glibc)));
  EXPECT_NE(glibc.find("\"allocator\": \"glibc\""), std::string::npos);
  EXPECT_NE(glibc.find("\"allocator_bytes\": 0"), std::string::npos);
}

}  // namespace
}  // namespace moat::planner

// GPU metrics (backends/cuda/gpu_metrics.h): thresholds, the Prometheus text, and NVML reading
// that reports why it cannot rather than failing (no driver on CI machines).
#include <gtest/gtest.h>

#include "gpu_metrics.h"

namespace moat::cuda {
namespace {

std::vector<gpu_sample> two_devices() {
  gpu_sample a;
  a.device = 0;
  a.utilization_pct = 87;
  a.memory_used_bytes = 139ull << 30;
  a.memory_total_bytes = 140ull << 30;
  a.temperature_c = 62;
  a.power_w = 612.5;
  gpu_sample b = a;
  b.device = 1;
  b.memory_used_bytes = 10ull << 30;
  b.temperature_c = 91;
  b.throttle_reasons = 0x20;
  return {a, b};
}

TEST(GpuMetrics, ThresholdsNameTheDeviceAndTheLimit) {
  const auto w = check_thresholds(two_devices(), {85, 0.97});
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[0].find("GPU 0 memory"), std::string::npos) << w[0];
  EXPECT_NE(w[1].find("GPU 1 temperature 91 C"), std::string::npos) << w[1];
  EXPECT_TRUE(check_thresholds(two_devices(), {95, 0.999}).empty());
  EXPECT_TRUE(check_thresholds({gpu_sample{}}, {85, 0.97}).empty());  // total 0: no division
}

TEST(GpuMetrics, PrometheusTextHasEveryGaugePerDevice) {
  const std::string t = prometheus_text(two_devices());
  EXPECT_NE(t.find("# TYPE moat_gpu_utilization_ratio gauge\n"), std::string::npos);
  EXPECT_NE(t.find("moat_gpu_utilization_ratio{device=\"0\"} 0.87\n"), std::string::npos) << t;
  EXPECT_NE(t.find("moat_gpu_temperature_celsius{device=\"1\"} 91\n"), std::string::npos);
  EXPECT_NE(t.find("moat_gpu_power_watts{device=\"0\"} 612.5\n"), std::string::npos);
  EXPECT_NE(t.find("moat_gpu_throttle_reasons{device=\"1\"} 32\n"), std::string::npos);
  EXPECT_NE(t.find("moat_gpu_memory_total_bytes{device=\"1\"} 150323855360\n"), std::string::npos) << t;
}

TEST(GpuMetrics, NvmlReadsOrSaysWhyNot) {
  nvml_reader r;
  std::vector<gpu_sample> s = two_devices();
  if (r.read(s)) {
    for (const auto& g : s) EXPECT_GT(g.memory_total_bytes, 0u);
    std::printf("NVML: %zu device(s)\n", s.size());
  } else {
    EXPECT_TRUE(s.empty());
    EXPECT_FALSE(r.error().empty());
    std::printf("NVML not available: %s\n", r.error().c_str());
  }
}

}  // namespace
}  // namespace moat::cuda

// gpu_monitor (backends/cuda/gpu_monitor.h), what the cuda plugin's metrics slot answers: the
// reading is cached for `refresh`, threshold warnings come once per crossing, a source without
// a reading (no NVML) gives no GPU families and no error, and the text passes the gateway's
// checks (moat_ names, TYPE before samples).
#include <gtest/gtest.h>

#include <sstream>

#include "gpu_monitor.h"

namespace moat::cuda {
namespace {

using clock = std::chrono::steady_clock;

struct fake_gpus {
  std::vector<gpu_sample> samples;
  bool available = true;
  bool read(std::vector<gpu_sample>& out) {
    if (!available) return false;
    out = samples;
    return true;
  }
};

gpu_sample device(int32_t id, uint32_t temperature, uint64_t used_gib) {
  gpu_sample s;
  s.device = id;
  s.temperature_c = temperature;
  s.memory_used_bytes = used_gib << 30;
  s.memory_total_bytes = 80ull << 30;
  s.utilization_pct = 50;
  return s;
}

struct monitor_fixture : ::testing::Test {
  fake_gpus gpus;
  clock::time_point t = clock::time_point{} + std::chrono::hours(1);
  std::vector<std::string> warnings;
  gpu_monitor mon{[this](std::vector<gpu_sample>& s) { return gpus.read(s); },
                  gpu_thresholds{85, 0.9},
                  [this](const std::string& w) { warnings.push_back(w); },
                  std::chrono::seconds(1),
                  [this] { return t; }};
};

TEST_F(monitor_fixture, reading_is_cached_for_the_refresh_interval) {
  gpus.samples = {device(0, 60, 10)};
  const std::string first = mon.text({});
  EXPECT_NE(first.find("moat_gpu_temperature_celsius{device=\"0\"} 60\n"), std::string::npos) << first;
  gpus.samples[0].temperature_c = 70;
  t += std::chrono::milliseconds(900);
  EXPECT_EQ(mon.text({}), first);  // still the cached reading
  EXPECT_EQ(mon.reads(), 1);
  t += std::chrono::milliseconds(100);
  EXPECT_NE(mon.text({}).find("moat_gpu_temperature_celsius{device=\"0\"} 70\n"), std::string::npos);
  EXPECT_EQ(mon.reads(), 2);
}

TEST_F(monitor_fixture, a_threshold_warns_once_per_crossing) {
  gpus.samples = {device(0, 60, 10), device(1, 60, 10)};
  auto step = [&] {
    t += std::chrono::seconds(1);
    mon.text({});
  };
  step();
  EXPECT_TRUE(warnings.empty());
  gpus.samples[1].temperature_c = 90;  // device 1 crosses 85 C
  step();
  step();
  step();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("GPU 1 temperature 90 C"), std::string::npos) << warnings[0];
  gpus.samples[0].memory_used_bytes = 79ull << 30;  // device 0 crosses 90% memory
  step();
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[1].find("GPU 0 memory"), std::string::npos) << warnings[1];
  gpus.samples[1].temperature_c = 80;  // back below: re-armed
  step();
  gpus.samples[1].temperature_c = 88;
  step();
  ASSERT_EQ(warnings.size(), 3u);
  EXPECT_NE(warnings[2].find("GPU 1 temperature 88 C"), std::string::npos);
}

TEST_F(monitor_fixture, no_nvml_means_no_gpu_families_and_no_warning) {
  gpus.available = false;
  const std::string text = mon.text({.device_used = 3, .device_total = 100});
  EXPECT_EQ(text.find("moat_gpu_temperature"), std::string::npos) << text;
  EXPECT_NE(text.find("moat_gpu_kv_blocks_used{pool=\"device\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("moat_gpu_kv_blocks_total{pool=\"device\"} 100\n"), std::string::npos);
  EXPECT_EQ(text.find("pool=\"host\""), std::string::npos);  // no host pool configured
  EXPECT_TRUE(warnings.empty());
  EXPECT_TRUE(mon.text({}).empty());
}

TEST_F(monitor_fixture, only_the_models_gpus_under_their_cuda_ordinals) {
  gpus.samples = {device(0, 60, 10), device(1, 61, 10), device(2, 95, 10)};
  mon.set_devices({{2, 0}, {0, 1}});  // NVML 2 is CUDA 0, NVML 0 is CUDA 1; NVML 1 is not ours
  const std::string text = mon.text({});
  EXPECT_NE(text.find("moat_gpu_temperature_celsius{device=\"0\"} 95\n"), std::string::npos) << text;
  EXPECT_NE(text.find("moat_gpu_temperature_celsius{device=\"1\"} 60\n"), std::string::npos);
  EXPECT_EQ(text.find("} 61\n"), std::string::npos) << "another model's GPU was reported";
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("GPU 0 temperature 95 C"), std::string::npos) << warnings[0];
}

TEST_F(monitor_fixture, a_throwing_source_is_a_source_without_a_reading) {
  gpu_monitor m([](std::vector<gpu_sample>&) -> bool { throw std::runtime_error("driver gone"); }, {}, {});
  EXPECT_TRUE(m.text({}).empty());
}

TEST(KvPoolText, BothPoolsWhenTheHostPoolExists) {
  const std::string t = kv_pool_text({.device_used = 7, .device_total = 8, .host_used = 2, .host_total = 64});
  EXPECT_EQ(t,
            "# HELP moat_gpu_kv_blocks_used KV cache blocks in use (pool=device: on the GPU, pool=host: swapped out "
            "to pinned host memory)\n"
            "# TYPE moat_gpu_kv_blocks_used gauge\n"
            "moat_gpu_kv_blocks_used{pool=\"device\"} 7\n"
            "moat_gpu_kv_blocks_used{pool=\"host\"} 2\n"
            "# HELP moat_gpu_kv_blocks_total KV cache blocks in the pool\n"
            "# TYPE moat_gpu_kv_blocks_total gauge\n"
            "moat_gpu_kv_blocks_total{pool=\"device\"} 8\n"
            "moat_gpu_kv_blocks_total{pool=\"host\"} 64\n");
}

TEST_F(monitor_fixture, every_sample_is_under_a_declared_moat_family) {
  gpus.samples = {device(0, 60, 10), device(1, 61, 11)};
  std::istringstream in(mon.text({.device_used = 1, .device_total = 2, .host_used = 0, .host_total = 4}));
  std::string declared;
  int samples = 0;
  for (std::string l; std::getline(in, l);) {
    ASSERT_FALSE(l.empty());
    if (l.rfind("# TYPE ", 0) == 0) {
      declared = l.substr(7, l.find(' ', 7) - 7);
      EXPECT_EQ(declared.rfind("moat_", 0), 0u) << declared;
      continue;
    }
    if (l[0] == '#') continue;
    EXPECT_EQ(l.rfind(declared + "{", 0), 0u) << l;
    EXPECT_EQ(l.find("model_name"), std::string::npos) << "the host adds model_name";
    ++samples;
  }
  EXPECT_EQ(samples, 6 * 2 + 2 * 2);
}

}  // namespace
}  // namespace moat::cuda

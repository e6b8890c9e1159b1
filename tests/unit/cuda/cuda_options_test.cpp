// The cuda plugin's option keys (backends/cuda/cuda_options.h): defaults, tensor_parallel and
// devices agreeing, and errors that name the key.
#include <gtest/gtest.h>

#include "cuda_options.h"

namespace moat::cuda {
namespace {

std::string error_of(std::string_view json) {
  try {
    parse_cuda_options(json);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(CudaOptions, DefaultsAreOneGpuWithGraphs) {
  const auto o = parse_cuda_options("{\"path\": \"m\", \"quant\": \"int4\"}");  // others' keys ignored
  EXPECT_EQ(o.devices, std::vector<int32_t>{0});
  EXPECT_EQ(o.tensor_parallel, 1);
  EXPECT_TRUE(o.cuda_graphs);
  EXPECT_EQ(o.host_kv_mb, 0);
  EXPECT_EQ(o.thresholds.temperature_c, 85u);
  EXPECT_DOUBLE_EQ(o.thresholds.memory_fraction, 0.97);
  EXPECT_EQ(parse_cuda_options("").devices, std::vector<int32_t>{0});
}

TEST(CudaOptions, TensorParallelAndDevices) {
  EXPECT_EQ(parse_cuda_options("{\"tensor_parallel\": 4}").devices, (std::vector<int32_t>{0, 1, 2, 3}));
  const auto o = parse_cuda_options("{\"devices\": [3, 1]}");
  EXPECT_EQ(o.tensor_parallel, 2);
  EXPECT_EQ(o.devices, (std::vector<int32_t>{3, 1}));
  EXPECT_EQ(parse_cuda_options("{\"device\": 5}").devices, std::vector<int32_t>{5});
  EXPECT_EQ(parse_cuda_options("{\"tensor_parallel\": 2, \"devices\": [6, 7]}").devices, (std::vector<int32_t>{6, 7}));
}

TEST(CudaOptions, OtherKeys) {
  const auto o = parse_cuda_options(
      "{\"host_kv_mb\": 4096, \"cuda_graphs\": false, \"gpu_warn_temperature_c\": 80, \"gpu_warn_memory_fraction\": 0.9}");
  EXPECT_EQ(o.host_kv_mb, 4096);
  EXPECT_FALSE(o.cuda_graphs);
  EXPECT_EQ(o.thresholds.temperature_c, 80u);
  EXPECT_DOUBLE_EQ(o.thresholds.memory_fraction, 0.9);
}

TEST(CudaOptions, ErrorsNameTheKey) {
  EXPECT_NE(error_of("{\"tensor_parallel\": 2, \"devices\": [0]}").find("options.devices: 1 GPUs listed for tensor_parallel: 2"),
            std::string::npos);
  EXPECT_NE(error_of("{\"devices\": [0, 0]}").find("GPU 0 is listed twice"), std::string::npos);
  EXPECT_NE(error_of("{\"devices\": []}").find("options.devices"), std::string::npos);
  EXPECT_NE(error_of("{\"devices\": \"0,1\"}").find("options.devices"), std::string::npos);
  EXPECT_NE(error_of("{\"tensor_parallel\": 0}").find("options.tensor_parallel: 0 is outside 1..64"), std::string::npos);
  EXPECT_NE(error_of("{\"tensor_parallel\": 1.5}").find("options.tensor_parallel: expected an integer"), std::string::npos);
  EXPECT_NE(error_of("{\"cuda_graphs\": 1}").find("options.cuda_graphs"), std::string::npos);
  EXPECT_NE(error_of("{\"gpu_warn_memory_fraction\": 2}").find("options.gpu_warn_memory_fraction"), std::string::npos);
  EXPECT_NE(error_of("[1]").find("options: expected a map"), std::string::npos);
  EXPECT_NE(error_of("{").find("options: expected a map"), std::string::npos);
}

}  // namespace
}  // namespace moat::cuda

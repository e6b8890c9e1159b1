// libmoat_cuda.so through the C ABI: it loads, exports moat_backend_entry, and create() without
// a model fails with a clear message (no device: unavailable; a device: options.path missing),
// never a crash. Serving a real model: plugin_serve_test.cpp.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <moat/backend.h>

#include <string>

namespace {

TEST(CudaPlugin, CreateFailsWithAClearMessage) {
  const std::string path = std::string(MOAT_BINARY_DIR) + "/lib/moat/libmoat_cuda.so";
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr) << dlerror();
  auto entry = reinterpret_cast<moat_backend_entry_fn>(dlsym(h, MOAT_BACKEND_ENTRY_SYMBOL));
  ASSERT_NE(entry, nullptr);
  const moat_backend_api* api = entry();
  EXPECT_EQ(api->abi_version, MOAT_BACKEND_ABI_VERSION);
  EXPECT_EQ(std::string(api->name.data, api->name.size), "cuda");
  moat_backend_config cfg{};
  cfg.struct_size = sizeof(cfg);
  moat_backend* b = nullptr;
  moat_error err{};
  err.struct_size = sizeof(err);
  const moat_status s = api->create(&cfg, &b, &err);
  EXPECT_TRUE(s == MOAT_ERR_UNAVAILABLE || s == MOAT_ERR_INVALID_ARGUMENT) << s;
  EXPECT_EQ(b, nullptr);
  EXPECT_EQ(std::string(err.message).rfind("cuda backend: ", 0), 0u) << err.message;
  if (s == MOAT_ERR_INVALID_ARGUMENT) {  // a device is present: the engine asks for the model
    EXPECT_NE(std::string(err.message).find("options.path"), std::string::npos) << err.message;
  }
  std::printf("create(): %s\n", err.message);

  // The metrics slot is in the table (its instance-side behaviour: gpu_monitor_test).
  EXPECT_EQ(api->struct_size, sizeof(moat_backend_api));
  EXPECT_NE(api->metrics, nullptr);
  EXPECT_EQ(api->metrics(nullptr, nullptr, nullptr), MOAT_OK);

  // Options are checked before the device: a bad value names its key on any machine.
  const std::string bad = "{\"tensor_parallel\": 2, \"devices\": [0, 0]}";
  cfg.options_json = moat_str{bad.data(), bad.size()};
  EXPECT_EQ(api->create(&cfg, &b, &err), MOAT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("options.devices"), std::string::npos) << err.message;
  EXPECT_EQ(b, nullptr);
  dlclose(h);
}

}  // namespace

// Corrupted checkpoints never crash the loader: random byte flips and truncations of a valid
// GGUF and a valid safetensors file either load or throw model_error (run under ASan/UBSan by
// `make test-asan`). A model that still loads must also run a forward step without faulting.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include <spdlog/spdlog.h>

#include "engine/loader.h"
#include "engine/model_error.h"
#include "synthetic_model.h"
#include "test_support.h"

namespace moat::test {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Loads `bytes` written to `target` (optionally inside a folder); returns true if it loaded.
bool try_load(const fs::path& load_path, const fs::path& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  try {
    auto m = std::make_shared<const engine::loaded_model>(engine::load_model(load_path));
    auto r = cpu::make_cpu_runner(m, {.threads = 1, .kv_cache_mb = 1, .max_ctx = 8, .max_slots = 1});
    std::vector<float> logits(static_cast<size_t>(m->config.vocab_size));
    const std::vector<int32_t> prompt = {0};
    engine::forward_item it{0, prompt, 0, false};
    r->forward({&it, 1}, logits);
    return true;
  } catch (const engine::model_error&) {
    return false;
  }
}

void mutate(std::string& s, std::mt19937& rng, size_t header_bytes) {
  // Most flips land in the header/metadata, where parsing decisions are made.
  const size_t span = std::min(s.size(), header_bytes);
  const int flips = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < flips; ++i) {
    const size_t at = rng() % span;
    switch (rng() % 3) {
      case 0: s[at] = static_cast<char>(rng()); break;
      case 1: s[at] = static_cast<char>(0xff); break;
      default: s[at] ^= static_cast<char>(1u << (rng() % 8)); break;
    }
  }
  if (rng() % 4 == 0) s.resize(rng() % s.size());
}

class fuzz : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);  // hundreds of loads: keep their info lines out
    dir_ = fs::temp_directory_path() / ("moat_fuzz_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    spdlog::set_level(spdlog::level::info);
    fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(fuzz, corrupted_gguf_loads_or_throws_model_error) {
  synthetic_model m;
  m.hidden = 32;
  m.inter = 64;
  m.build();
  const fs::path p = dir_ / "m.gguf";
  write_synthetic_gguf(m, p, 8);
  const std::string good = slurp(p);
  std::mt19937 rng(123);
  int loaded = 0;
  for (int i = 0; i < 400; ++i) {
    std::string bad = good;
    mutate(bad, rng, 1200);
    loaded += try_load(p, p, bad);
  }
  EXPECT_LT(loaded, 400);  // most corruptions are caught
}

TEST_F(fuzz, corrupted_safetensors_loads_or_throws_model_error) {
  synthetic_model m;
  m.write_hf(dir_);
  const fs::path p = dir_ / "model.safetensors";
  const std::string good = slurp(p);
  std::mt19937 rng(321);
  int loaded = 0;
  for (int i = 0; i < 400; ++i) {
    std::string bad = good;
    mutate(bad, rng, 1500);
    loaded += try_load(dir_, p, bad);
  }
  EXPECT_LT(loaded, 400);
}

TEST_F(fuzz, corrupted_config_loads_or_throws_model_error) {
  synthetic_model m;
  m.write_hf(dir_);
  const fs::path p = dir_ / "config.json";
  const std::string good = slurp(p);
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string bad = good;
    mutate(bad, rng, bad.size());
    try_load(dir_, p, bad);
  }
}

}  // namespace
}  // namespace moat::test

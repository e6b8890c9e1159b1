// Helpers of the quantized-checkpoint tests: fixture paths, runners with and without the
// reference path, all-position logits, error measures and scratch folders.
//
//   auto r = runner(load_shared(dir), /*reference=*/true);
//   std::vector<float> logits = all_logits(*r, {1, 5, 9});   // [3][vocab]
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cpu/cpu_runner.h"
#include "engine/loader.h"

namespace moat::test {

inline std::filesystem::path fixture(const std::string& rel) { return std::filesystem::path(MOAT_FIXTURES_DIR) / rel; }
inline std::filesystem::path source_path(const std::string& rel) { return std::filesystem::path(MOAT_SOURCE_DIR) / rel; }

// A fresh folder under the temp dir, removed with the object.
struct scratch_dir {
  std::filesystem::path path;
  explicit scratch_dir(const std::string& tag)
      : path(std::filesystem::temp_directory_path() / ("moat_qckpt_" + tag + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

inline std::shared_ptr<const engine::loaded_model> load_shared(const std::filesystem::path& p) {
  return std::make_shared<const engine::loaded_model>(engine::load_model(p));
}

inline std::unique_ptr<engine::model_runner> runner(std::shared_ptr<const engine::loaded_model> m, bool reference,
                                                    const std::string& quant = "") {
  return cpu::make_cpu_runner(std::move(m), {.threads = 2, .kv_cache_mb = 8, .reference = reference, .quant = quant});
}

// Logits at every position of `ids`, fed from position 0: [ids.size()][vocab].
inline std::vector<float> all_logits(engine::model_runner& r, const std::vector<int32_t>& ids) {
  std::vector<float> out(ids.size() * static_cast<size_t>(r.config().vocab_size));
  engine::forward_item item;  // fields set one by one: the struct grows (block tables)
  item.slot = 0;
  item.tokens = ids;
  item.start_pos = 0;
  item.all_logits = true;
  r.forward({&item, 1}, out);
  return out;
}

// Worst position of max|a - b| / max|b| over rows of `vocab` logits.
inline double max_rel_error(const std::vector<float>& a, const std::vector<float>& b, int64_t vocab) {
  double worst = 0;
  for (size_t row = 0; row * vocab < b.size(); ++row) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      num = std::max(num, std::abs(static_cast<double>(a[row * vocab + i]) - b[row * vocab + i]));
      den = std::max(den, std::abs(static_cast<double>(b[row * vocab + i])));
    }
    worst = std::max(worst, num / std::max(den, 1e-30));
  }
  return worst;
}

// Positions where the top-1 of a equals the top-1 of b.
inline int same_argmax(const std::vector<float>& a, const std::vector<float>& b, int64_t vocab) {
  int same = 0;
  for (size_t row = 0; row * vocab < b.size(); ++row) {
    const auto* pa = a.data() + row * vocab;
    const auto* pb = b.data() + row * vocab;
    same += (std::max_element(pa, pa + vocab) - pa) == (std::max_element(pb, pb + vocab) - pb);
  }
  return same;
}

}  // namespace moat::test

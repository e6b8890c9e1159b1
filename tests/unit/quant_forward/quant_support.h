// Helpers of the quant_forward tests: runners over the fixtures with and without options.quant,
// all-position logits, greedy decoding and the error measures they report.
//
//   auto r = runner(model_dir, "int8", /*reference=*/false);
//   auto logits = all_logits(*r, ids);          // [ids.size()][vocab]
#pragma once

#include <gtest/gtest.h>

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

// The two fixture models (the tests start each from BOS alone).
struct model_case {
  std::string name;
  std::string path;     // relative to the fixtures
  std::string weights;  // file whose presence means the fixture is there
  std::string tokenizer;  // what engine::load_tokenizer reads
};
inline const std::vector<model_case>& model_cases() {
  static const std::vector<model_case> cases = {
      {"stories260K", "llama2c-stories260K/stories260K.bin", "llama2c-stories260K/stories260K.bin",
       "llama2c-stories260K/tok512.bin"},
      {"tinystories656K", "tinystories-656K-hf", "tinystories-656K-hf/model.safetensors", "tinystories-656K-hf"},
  };
  return cases;
}

inline std::shared_ptr<const engine::loaded_model> load_shared(const std::filesystem::path& p) {
  return std::make_shared<const engine::loaded_model>(engine::load_model(p));
}

inline std::unique_ptr<engine::model_runner> runner(std::shared_ptr<const engine::loaded_model> m, const std::string& quant,
                                                    bool reference, int threads = 2) {
  return cpu::make_cpu_runner(std::move(m), {.threads = threads, .kv_cache_mb = 16, .max_slots = 2,
                                             .reference = reference, .quant = quant});
}

// Logits at every position of `ids` fed from position 0 into slot 0: [ids.size()][vocab].
inline std::vector<float> all_logits(engine::model_runner& r, const std::vector<int32_t>& ids) {
  std::vector<float> out(ids.size() * static_cast<size_t>(r.config().vocab_size));
  engine::forward_item item{0, ids, 0, true};
  r.forward({&item, 1}, out);
  return out;
}

inline int32_t argmax(const float* x, int64_t n) { return static_cast<int32_t>(std::max_element(x, x + n) - x); }

// Prompt, then n greedy tokens one decode step at a time; returns the generated ids.
inline std::vector<int32_t> greedy(engine::model_runner& r, const std::vector<int32_t>& prompt, int n) {
  const int64_t vocab = r.config().vocab_size;
  std::vector<float> logits(static_cast<size_t>(vocab));
  engine::forward_item item{0, prompt, 0, false};
  r.forward({&item, 1}, logits);
  std::vector<int32_t> out;
  auto pos = static_cast<int32_t>(prompt.size());
  for (int i = 0; i < n; ++i) {
    out.push_back(argmax(logits.data(), vocab));
    if (i + 1 == n) break;
    engine::forward_item step{0, {&out.back(), 1}, pos++, false};
    r.forward({&step, 1}, logits);
  }
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

// Leading tokens two greedy runs share.
inline int common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return static_cast<int>(i);
}

}  // namespace moat::test

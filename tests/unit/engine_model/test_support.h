// Helpers shared by the engine_model tests: fixture paths, JSON goldens, a plain greedy loop.
//
//   if (!fixture_exists("tinystories-656K-hf")) GTEST_SKIP() << "...";
//   auto ids = greedy(*runner, {1}, 64);
#pragma once

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "cpu/cpu_runner.h"
#include "engine/model_runner.h"

namespace moat::test {

inline std::filesystem::path fixtures() { return MOAT_FIXTURES_DIR; }
inline std::filesystem::path fixture(const std::string& rel) { return fixtures() / rel; }
inline bool fixture_exists(const std::string& rel) { return std::filesystem::exists(fixture(rel)); }

inline std::vector<double> json_numbers(simdjson::dom::element e) {
  std::vector<double> out;
  for (auto v : e.get_array()) {
    double d = 0;
    if (v.get_double().get(d) != simdjson::SUCCESS) d = static_cast<double>(int64_t(v.get_int64()));
    out.push_back(d);
  }
  return out;
}

inline std::vector<int32_t> json_ids(simdjson::dom::element e) {
  std::vector<int32_t> out;
  for (auto v : e.get_array()) out.push_back(static_cast<int32_t>(int64_t(v.get_int64())));
  return out;
}

inline int32_t argmax(const float* x, int64_t n) { return static_cast<int32_t>(std::max_element(x, x + n) - x); }

// Feeds `prompt` into `slot` in one prefill item, then decodes `n` tokens greedily.
// Returns the generated ids; `first_logits` (if given) receives the logits after the prompt.
inline std::vector<int32_t> greedy(engine::model_runner& r, const std::vector<int32_t>& prompt, int n, int32_t slot = 0,
                                   std::vector<float>* first_logits = nullptr) {
  const int64_t vocab = r.config().vocab_size;
  std::vector<float> logits(static_cast<size_t>(vocab));
  engine::forward_item item{slot, prompt, 0, false};
  r.forward({&item, 1}, logits);
  if (first_logits) *first_logits = logits;
  std::vector<int32_t> out;
  int32_t pos = static_cast<int32_t>(prompt.size());
  for (int i = 0; i < n; ++i) {
    int32_t next = argmax(logits.data(), vocab);
    out.push_back(next);
    if (i + 1 == n) break;
    engine::forward_item step{slot, {&out.back(), 1}, pos++, false};
    r.forward({&step, 1}, logits);
  }
  return out;
}

// max |a-b| / max(max |b|, tiny): the relative error over a whole logit vector.
inline double rel_error(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::abs(static_cast<double>(a[i]) - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return num / std::max(den, 1e-30);
}

inline std::shared_ptr<const engine::loaded_model> load_shared(const std::filesystem::path& p) {
  return std::make_shared<const engine::loaded_model>(engine::load_model(p));
}

}  // namespace moat::test

// For tests that check two loads of a model compute the same thing: the logits of a short
// greedy run on the cpu runner (one thread), compared bit for bit. Header-only; a test that
// includes it links the cpu runtime.
//   expect_bit_identical(greedy_logits(decrypted, prompt, 8), greedy_logits(plain, prompt, 8));
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cpu/cpu_runner.h"
#include "engine/loader.h"

namespace moat::test_support {

// The prompt's last-position logits, then those of `steps` greedy tokens, concatenated.
// `quant` is the runner's options.quant ("" = weights as loaded).
inline std::vector<float> greedy_logits(const engine::loaded_model& loaded,
                                        const std::vector<int32_t>& prompt, int steps,
                                        const std::string& quant = "") {
  auto model = std::make_shared<const engine::loaded_model>(loaded);
  cpu::cpu_options opts;  // by field: the struct grows members tests need not name
  opts.threads = 1;
  opts.kv_cache_mb = 8;
  opts.max_ctx = 64;
  opts.max_slots = 1;
  opts.quant = quant;
  auto r = cpu::make_cpu_runner(model, opts);
  std::vector<float> logits(static_cast<size_t>(r->config().vocab_size)), all;
  engine::forward_item item{0, prompt, 0, false};
  r->forward({&item, 1}, logits);
  all.insert(all.end(), logits.begin(), logits.end());
  auto pos = static_cast<int32_t>(prompt.size());
  for (int i = 0; i < steps; ++i) {
    auto next =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    engine::forward_item step{0, {&next, 1}, pos++, false};
    r->forward({&step, 1}, logits);
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

inline void expect_bit_identical(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

}  // namespace moat::test_support

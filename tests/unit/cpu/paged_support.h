// Helpers of the paged KV tests: fixture models and a greedy loop over explicit block tables.
//
//   auto model = load_fixture("tinystories-656K-hf");    // nullptr when the fixture is absent
//   auto logits = run_chunks(*runner, table, prompt, {7, 3}, 20);
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cpu/cpu_runner.h"
#include "engine/loader.h"
#include "engine/model_runner.h"

namespace moat::cpu::testing {

struct fixture_model {
  std::string name;  // folder under ../shared/fixtures
  std::string file;  // what to load inside it ("" = the folder)
};

inline const std::vector<fixture_model>& fixture_models() {
  static const std::vector<fixture_model> all = {{"llama2c-stories260K", "stories260K.bin"},
                                                 {"tinystories-656K-hf", ""}};
  return all;
}

inline std::filesystem::path fixture_path(const fixture_model& m) {
  std::filesystem::path p = std::filesystem::path(MOAT_FIXTURES_DIR) / m.name;
  return m.file.empty() ? p : p / m.file;
}

inline std::shared_ptr<const engine::loaded_model> load_fixture(const fixture_model& m) {
  if (!std::filesystem::exists(fixture_path(m))) return nullptr;
  return std::make_shared<const engine::loaded_model>(engine::load_model(fixture_path(m)));
}

inline int32_t argmax(const float* x, size_t n) { return static_cast<int32_t>(std::max_element(x, x + n) - x); }

// A prompt of `n` ids inside the vocabulary (BOS first), varied by `seed`.
inline std::vector<int32_t> prompt_ids(int n, int32_t vocab, int32_t seed = 0) {
  std::vector<int32_t> p = {1};
  for (int i = 1; i < n; ++i) p.push_back(3 + (i * 37 + seed * 101) % (vocab - 3));
  return p;
}

// Feeds `prompt` in chunks of the given sizes (the rest in one last chunk), all logits kept,
// then `decode` greedy steps; every item goes through `table`. Returns every logits row, in
// order: [prompt.size() + decode][vocab].
inline std::vector<float> run_chunks(engine::model_runner& r, std::span<const int32_t> table,
                                     const std::vector<int32_t>& prompt, const std::vector<int>& chunks, int decode) {
  const size_t vocab = static_cast<size_t>(r.config().vocab_size);
  std::vector<float> all;
  size_t pos = 0;
  auto run = [&](std::span<const int32_t> toks) {
    engine::forward_item it{.tokens = toks, .start_pos = static_cast<int32_t>(pos), .all_logits = true, .blocks = table};
    std::vector<float> out(toks.size() * vocab);
    r.forward({&it, 1}, out);
    all.insert(all.end(), out.begin(), out.end());
    pos += toks.size();
  };
  for (int c : chunks) {
    if (pos + static_cast<size_t>(c) >= prompt.size()) break;
    run(std::span<const int32_t>(prompt).subspan(pos, static_cast<size_t>(c)));
  }
  run(std::span<const int32_t>(prompt).subspan(pos));
  for (int i = 0; i < decode; ++i) {
    const int32_t next = argmax(all.data() + all.size() - vocab, vocab);
    run(std::span<const int32_t>(&next, 1));
  }
  return all;
}

}  // namespace moat::cpu::testing

// Forward passes against transformers fp32 goldens (tests/golden/engine_model/*.json, made by
// tools/make_logit_goldens.py outside CI): last-position logits to relative error < 1e-4
// (max |ours - theirs| / max |theirs|, over all logits or the top 64 for large vocabularies) and
// 64 identical greedy tokens, on the reference path, the batched path one prompt at a time, and
// the batched path with every prompt of a model in one batch.
#include <gtest/gtest.h>

#include "test_support.h"

namespace moat::test {
namespace {

namespace fs = std::filesystem;

struct golden_prompt {
  std::vector<int32_t> ids, greedy;
  std::vector<std::pair<int32_t, double>> top;
  std::vector<double> last;  // empty for large vocabularies
};

struct golden_case {
  std::string golden;  // file name under tests/golden/engine_model
  std::string model;   // path under the fixtures folder, or under the repo when in_repo
  bool in_repo = false;
};

std::vector<golden_prompt> read_golden(const fs::path& p) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load(p.string());
  std::vector<golden_prompt> out;
  for (auto pr : doc["prompts"].get_array()) {
    golden_prompt g;
    g.ids = json_ids(pr["ids"]);
    g.greedy = json_ids(pr["greedy"]);
    for (auto kv : pr["top_logits"].get_array()) {
      auto a = kv.get_array();
      g.top.emplace_back(static_cast<int32_t>(int64_t(a.at(0))), double(a.at(1)));
    }
    simdjson::dom::array last;
    if (pr["last_logits"].get_array().get(last) == simdjson::SUCCESS) g.last = json_numbers(pr["last_logits"]);
    out.push_back(std::move(g));
  }
  return out;
}

void check_logits(const std::vector<float>& ours, const golden_prompt& g) {
  if (!g.last.empty()) {
    EXPECT_LT(rel_error(ours, g.last), 1e-4);
  } else {
    double num = 0, den = 0;
    for (auto [id, v] : g.top) {
      num = std::max(num, std::abs(ours[static_cast<size_t>(id)] - v));
      den = std::max(den, std::abs(v));
    }
    EXPECT_LT(num / den, 1e-4);
  }
  EXPECT_EQ(argmax(ours.data(), static_cast<int64_t>(ours.size())), g.top[0].first);
}

class goldens : public ::testing::TestWithParam<golden_case> {
 protected:
  void SetUp() override {
    const fs::path golden = fs::path(MOAT_SOURCE_DIR) / "tests/golden/engine_model" / (GetParam().golden + ".json");
    ASSERT_TRUE(fs::exists(golden)) << golden << " is missing: run tools/make_logit_goldens.py";
    const fs::path model = GetParam().in_repo ? fs::path(MOAT_SOURCE_DIR) / GetParam().model : fixture(GetParam().model);
    if (!fs::exists(model)) GTEST_SKIP() << "fixture " << GetParam().model << " is absent";
    prompts_ = read_golden(golden);
    ASSERT_FALSE(prompts_.empty());
    model_ = load_shared(model);
  }

  std::vector<golden_prompt> prompts_;
  std::shared_ptr<const engine::loaded_model> model_;
};

TEST_P(goldens, one_prompt_at_a_time_on_both_paths) {
  for (bool reference : {true, false}) {
    auto r = cpu::make_cpu_runner(model_, {.threads = 2, .kv_cache_mb = 64, .max_ctx = 256, .max_slots = 1, .reference = reference});
    for (const auto& g : prompts_) {
      SCOPED_TRACE(std::string(reference ? "reference" : "batched") + " prompt of " + std::to_string(g.ids.size()) + " ids");
      std::vector<float> logits;
      const auto ids = greedy(*r, g.ids, static_cast<int>(g.greedy.size()), 0, &logits);
      check_logits(logits, g);
      EXPECT_EQ(ids, g.greedy);
    }
  }
}

TEST_P(goldens, all_prompts_in_one_batch) {
  const auto n = static_cast<int32_t>(prompts_.size());
  auto r = cpu::make_cpu_runner(model_, {.threads = 2, .kv_cache_mb = 64, .max_ctx = 256, .max_slots = n});
  ASSERT_EQ(r->n_slots(), n);
  const size_t vocab = static_cast<size_t>(r->config().vocab_size);
  std::vector<engine::forward_item> items;
  for (int32_t s = 0; s < n; ++s) items.push_back({s, prompts_[s].ids, 0, false});
  std::vector<float> logits(n * vocab);
  r->forward(items, logits);
  std::vector<std::vector<int32_t>> got(n);
  std::vector<int32_t> next(n);
  for (int step = 0; step < static_cast<int>(prompts_[0].greedy.size()); ++step) {
    for (int32_t s = 0; s < n; ++s) {
      if (step == 0) {
        std::vector<float> row(logits.begin() + s * vocab, logits.begin() + (s + 1) * vocab);
        check_logits(row, prompts_[s]);
      }
      next[s] = argmax(logits.data() + s * vocab, static_cast<int64_t>(vocab));
      got[s].push_back(next[s]);
      items[s] = {s, {&next[s], 1}, static_cast<int32_t>(prompts_[s].ids.size()) + step, false};
    }
    r->forward(items, logits);
  }
  for (int32_t s = 0; s < n; ++s) EXPECT_EQ(got[s], prompts_[s].greedy) << "prompt " << s;
}

INSTANTIATE_TEST_SUITE_P(models, goldens,
                         ::testing::Values(golden_case{"tinystories-656K-hf", "tinystories-656K-hf"},
                                           golden_case{"stories260K", "llama2c-stories260K/stories260K.bin"},
                                           golden_case{"llama-2-tiny-random-gguf",
                                                       "llama2-tiny-random-gguf/llama-2-tiny-random.gguf"},
                                           golden_case{"synthetic-llama3", "tests/golden/engine_model/synthetic-llama3", true}),
                         [](const auto& info) {
                           std::string n = info.param.golden;
                           for (char& c : n) if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

}  // namespace
}  // namespace moat::test

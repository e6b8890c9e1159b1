// The forward passes against the fixtures' own reference outputs (README in ../shared/fixtures):
// stories260K (llama2.c format, 256 greedy ids and the 512 logits at position 0) and
// tinystories-656K-hf (64 greedy ids), on the reference and the batched path.
#include <gtest/gtest.h>

#include "test_support.h"

namespace moat::test {
namespace {

struct path_case {
  bool reference;
  int threads;
};

class fixture_forward : public ::testing::TestWithParam<path_case> {
 protected:
  std::unique_ptr<engine::model_runner> runner(const std::filesystem::path& model) {
    return cpu::make_cpu_runner(load_shared(model), {.threads = GetParam().threads, .kv_cache_mb = 16, .max_slots = 4,
                                                     .reference = GetParam().reference});
  }
};

TEST_P(fixture_forward, stories260k_llama2c_matches_expected_greedy) {
  const std::string dir = "llama2c-stories260K";
  if (!fixture_exists(dir + "/stories260K.bin")) GTEST_SKIP() << "fixture " << dir << " is absent";
  simdjson::dom::parser parser;
  auto doc = parser.load(fixture(dir + "/expected_greedy.json").string());
  const auto want_ids = json_ids(doc["ids"]);
  const auto want_logits = json_numbers(doc["logits_pos0_after_bos"]);
  auto r = runner(fixture(dir + "/stories260K.bin"));
  ASSERT_EQ(r->config().vocab_size, 512);
  std::vector<float> logits0;
  const auto ids = greedy(*r, {1}, static_cast<int>(want_ids.size()), 0, &logits0);
  EXPECT_LT(rel_error(logits0, want_logits), 1e-4);
  EXPECT_EQ(argmax(logits0.data(), 512), 403);
  EXPECT_EQ(ids, want_ids);
}

TEST_P(fixture_forward, tinystories_hf_matches_expected_greedy) {
  const std::string dir = "tinystories-656K-hf";
  if (!fixture_exists(dir + "/model.safetensors")) GTEST_SKIP() << "fixture " << dir << " is absent";
  simdjson::dom::parser parser;
  auto doc = parser.load(fixture(dir + "/expected_greedy.json").string());
  const auto want = json_ids(doc["ids"]);
  auto r = runner(fixture(dir));
  EXPECT_EQ(r->config().rope, engine::rope_style::rotate_half);
  EXPECT_EQ(greedy(*r, json_ids(doc["prompt_ids"]), static_cast<int>(want.size())), want);
}

INSTANTIATE_TEST_SUITE_P(paths, fixture_forward,
                         ::testing::Values(path_case{true, 1}, path_case{false, 1}, path_case{false, 3}),
                         [](const auto& info) {
                           return std::string(info.param.reference ? "reference" : "batched") + "_t" +
                                  std::to_string(info.param.threads);
                         });

// Batching must not change results: two sequences (one prefilling, one decoding) in one step
// give bit-identical logits to each run alone.
TEST(batching, batched_step_equals_each_sequence_alone) {
  const std::string dir = "tinystories-656K-hf";
  if (!fixture_exists(dir + "/model.safetensors")) GTEST_SKIP() << "fixture " << dir << " is absent";
  auto model = load_shared(fixture(dir));
  auto r = cpu::make_cpu_runner(model, {.threads = 3, .kv_cache_mb = 16, .max_slots = 4});
  const int64_t vocab = r->config().vocab_size;
  const std::vector<int32_t> a = {1, 147, 201, 282, 215}, b = {1, 598, 1662};

  std::vector<float> alone_a(vocab), alone_b(vocab);
  engine::forward_item ia{0, a, 0, false}, ib{1, b, 0, false};
  r->forward({&ia, 1}, alone_a);
  r->forward({&ib, 1}, alone_b);

  // Slot 2 holds a's first 4 tokens; one batch then decodes a's last token there while
  // prefilling b into slot 3.
  engine::forward_item pre{2, std::span(a).first(4), 0, false};
  std::vector<float> scratch(vocab);
  r->forward({&pre, 1}, scratch);
  engine::forward_item batch[] = {{2, std::span(a).subspan(4), 4, false}, {3, b, 0, false}};
  std::vector<float> both(2 * vocab);
  r->forward(batch, both);
  EXPECT_TRUE(std::equal(alone_a.begin(), alone_a.end(), both.begin()));
  EXPECT_TRUE(std::equal(alone_b.begin(), alone_b.end(), both.begin() + vocab));
}

// How the scheduler splits a prompt never changes a result: one prefill with all_logits, chunks
// of 3, and one token at a time give bit-identical logits at every position.
TEST(batching, chunked_prefill_equals_whole_prefill) {
  const std::string dir = "tinystories-656K-hf";
  if (!fixture_exists(dir + "/model.safetensors")) GTEST_SKIP() << "fixture " << dir << " is absent";
  auto r = cpu::make_cpu_runner(load_shared(fixture(dir)), {.threads = 2, .kv_cache_mb = 16, .max_slots = 3});
  const std::vector<int32_t> prompt = {1, 147, 201, 282, 215, 286, 598, 1662, 356, 499};
  const size_t vocab = 2048, n = prompt.size();
  std::vector<float> whole(n * vocab), chunked(n * vocab), single(n * vocab);
  engine::forward_item all{0, prompt, 0, true};
  r->forward({&all, 1}, whole);
  for (size_t b = 0; b < n; b += 3) {
    const size_t len = std::min<size_t>(3, n - b);
    engine::forward_item c{1, std::span(prompt).subspan(b, len), static_cast<int32_t>(b), true};
    r->forward({&c, 1}, std::span(chunked).subspan(b * vocab));
  }
  for (size_t i = 0; i < n; ++i) {
    engine::forward_item c{2, std::span(prompt).subspan(i, 1), static_cast<int32_t>(i), false};
    r->forward({&c, 1}, std::span(single).subspan(i * vocab));
  }
  EXPECT_EQ(whole, chunked);
  EXPECT_EQ(whole, single);
}

// The reference and the batched path agree to float rounding, with all_logits and GQA.
TEST(batching, reference_and_batched_agree_on_all_logits) {
  const std::string dir = "tinystories-656K-hf";
  if (!fixture_exists(dir + "/model.safetensors")) GTEST_SKIP() << "fixture " << dir << " is absent";
  auto model = load_shared(fixture(dir));
  auto ref = cpu::make_cpu_runner(model, {.kv_cache_mb = 16, .max_slots = 1, .reference = true});
  auto fast = cpu::make_cpu_runner(model, {.threads = 2, .kv_cache_mb = 16, .max_slots = 1});
  const std::vector<int32_t> prompt = {1, 147, 201, 282, 215, 286, 598, 1662};
  const size_t vocab = static_cast<size_t>(model->config.vocab_size);
  std::vector<float> lr(prompt.size() * vocab), lf(prompt.size() * vocab);
  engine::forward_item it{0, prompt, 0, true};
  ref->forward({&it, 1}, lr);
  fast->forward({&it, 1}, lf);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < lr.size(); ++i) {
    worst = std::max(worst, static_cast<double>(std::abs(lr[i] - lf[i])));
    scale = std::max(scale, static_cast<double>(std::abs(lr[i])));
  }
  EXPECT_LT(worst / scale, 1e-5);

  std::vector<float> hr(prompt.size() * model->config.hidden_size), hf(hr.size());
  ref->hidden_states({&it, 1}, hr);
  fast->hidden_states({&it, 1}, hf);
  for (size_t i = 0; i < hr.size(); ++i) ASSERT_NEAR(hr[i], hf[i], 1e-4) << "hidden element " << i;
}

TEST(runner, rejects_bad_items_before_touching_slots) {
  const std::string dir = "tinystories-656K-hf";
  if (!fixture_exists(dir + "/model.safetensors")) GTEST_SKIP() << "fixture " << dir << " is absent";
  auto r = cpu::make_cpu_runner(load_shared(fixture(dir)), {.threads = 1, .kv_cache_mb = 16, .max_ctx = 64, .max_slots = 2});
  EXPECT_EQ(r->n_slots(), 2);
  EXPECT_EQ(r->max_ctx(), 64);
  EXPECT_EQ(r->kv_bytes_per_token(), size_t{2 * 2 * 64 * 4});
  std::vector<float> logits(2 * 2048);
  const std::vector<int32_t> ok = {1}, bad_token = {5000};
  engine::forward_item bad_slot{7, ok, 0, false}, past_ctx{0, ok, 64, false}, bad_id{0, bad_token, 0, false};
  EXPECT_THROW(r->forward({&bad_slot, 1}, logits), engine::model_error);
  EXPECT_THROW(r->forward({&past_ctx, 1}, logits), engine::model_error);
  EXPECT_THROW(r->forward({&bad_id, 1}, logits), engine::model_error);
  engine::forward_item twice[] = {{0, ok, 0, false}, {0, ok, 1, false}};
  EXPECT_THROW(r->forward(twice, logits), engine::model_error);
  std::vector<float> small(10);
  engine::forward_item fine{0, ok, 0, false};
  EXPECT_THROW(r->forward({&fine, 1}, small), engine::model_error);
  EXPECT_THROW(cpu::make_cpu_runner(load_shared(fixture(dir)), {.kv_cache_mb = 0}), engine::model_error);
}

// copy_slot lets n > 1 choices share one prefill: decoding from the copy equals decoding from
// the original.
TEST(runner, copy_slot_continues_identically) {
  const std::string dir = "tinystories-656K-hf";
  if (!fixture_exists(dir + "/model.safetensors")) GTEST_SKIP() << "fixture " << dir << " is absent";
  auto r = cpu::make_cpu_runner(load_shared(fixture(dir)), {.threads = 2, .kv_cache_mb = 16, .max_slots = 2});
  const std::vector<int32_t> prompt = {1, 147, 201, 282};
  std::vector<float> l0(2048), l1(2048);
  engine::forward_item p{0, prompt, 0, false};
  r->forward({&p, 1}, l0);
  r->copy_slot(0, 1, 4);
  const int32_t next = 215;
  engine::forward_item s0{0, {&next, 1}, 4, false}, s1{1, {&next, 1}, 4, false};
  r->forward({&s0, 1}, l0);
  r->forward({&s1, 1}, l1);
  EXPECT_EQ(l0, l1);
}

}  // namespace
}  // namespace moat::test

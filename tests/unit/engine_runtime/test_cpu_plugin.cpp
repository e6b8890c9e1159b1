// libmoat_cpu.so through its C ABI with the real tinystories-656K fixture: greedy output against
// the fixture's independent reference, batch invariance, chunked prefill, stop strings, seeds,
// n, logprobs, cancellation, context errors, embeddings, tokenize/detokenize, shutdown.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include <simdjson.h>

#include "plugin_host.h"

namespace moat::testing {
namespace {

using namespace std::chrono_literals;

// MOAT_FIXTURES_DIR in the environment overrides the build-time location.
const std::string fixture_dir =
    std::string(std::getenv("MOAT_FIXTURES_DIR") ? std::getenv("MOAT_FIXTURES_DIR") : MOAT_FIXTURES_DIR) +
    "/tinystories-656K-hf";
const std::string plugin_path = MOAT_BINARY_DIR "/lib/moat/libmoat_cpu.so";

class cpu_plugin : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(fixture_dir + "/model.safetensors"))
      GTEST_SKIP() << "fixture missing: " << fixture_dir << " (see ../shared/fixtures/README.md)";
    lib_ = std::make_unique<plugin>(plugin_path);
    ASSERT_NE(lib_->api, nullptr) << "cannot load " << plugin_path << ": " << dlerror();
    ASSERT_EQ(lib_->api->abi_version, MOAT_BACKEND_ABI_VERSION);
  }
  void TearDown() override {
    for (auto* b : instances_) lib_->api->destroy(b);
  }

  moat_backend* create(const std::string& options_json, moat_error* err_out = nullptr) {
    moat_backend_config cfg{};
    cfg.struct_size = sizeof cfg;
    std::string name = "tinystories";
    cfg.model_name = str(name);
    cfg.options_json = str(options_json);
    moat_error err{};
    err.struct_size = sizeof err;
    moat_backend* b = nullptr;
    moat_status st = lib_->api->create(&cfg, &b, &err);
    if (err_out) *err_out = err;
    if (st != MOAT_OK) return nullptr;
    instances_.push_back(b);
    return b;
  }
  moat_backend* standard(const std::string& extra = "") {
    moat_error err{};
    auto* b = create("{\"path\": \"" + fixture_dir + "\", \"ctx\": 256, \"max_batch\": 8, \"threads\": 2" +
                         extra + "}",
                     &err);
    EXPECT_NE(b, nullptr) << err.message;
    return b;
  }

  // Submits and waits; returns the collector (ASSERT-friendly: check ->terminals).
  std::unique_ptr<collector> run(moat_backend* b, request_builder& rb) {
    auto c = std::make_unique<collector>();
    moat_error err{};
    err.struct_size = sizeof err;
    moat_status st = lib_->api->submit(b, &rb.build(), &collector::on_event, c.get(), &err);
    EXPECT_EQ(st, MOAT_OK) << err.message;
    if (st == MOAT_OK) {
      EXPECT_TRUE(c->wait());
    }
    return c;
  }

  std::unique_ptr<plugin> lib_;
  std::vector<moat_backend*> instances_;
};

std::vector<int32_t> reference_greedy_ids() {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load(fixture_dir + "/expected_greedy.json");
  std::vector<int32_t> ids;
  for (auto v : doc["ids"].get_array()) ids.push_back(static_cast<int32_t>(int64_t(v)));
  return ids;
}

TEST_F(cpu_plugin, capabilities_describe_the_model) {
  auto* b = standard();
  ASSERT_NE(b, nullptr);
  moat_capabilities caps{};
  caps.struct_size = sizeof caps;
  ASSERT_EQ(lib_->api->capabilities(b, &caps), MOAT_OK);
  EXPECT_TRUE(caps.flags & MOAT_CAP_CHAT);
  EXPECT_TRUE(caps.flags & MOAT_CAP_EMBEDDINGS);
  EXPECT_TRUE(caps.flags & MOAT_CAP_TOKEN_PROMPTS);
  EXPECT_EQ(caps.max_context, 256u);
  EXPECT_EQ(caps.embedding_dim, 128u);
}

TEST_F(cpu_plugin, greedy_from_bos_matches_the_reference_generation) {
  auto* b = standard();
  ASSERT_NE(b, nullptr);
  const auto want = reference_greedy_ids();
  ASSERT_EQ(want.size(), 64u);
  request_builder rb(1, MOAT_REQUEST_COMPLETION);
  rb.token_prompt({1});
  rb.req.sampling.max_tokens = 64;
  auto c = run(b, rb);
  ASSERT_EQ(c->error, MOAT_OK) << c->error_message;
  EXPECT_EQ(c->choices[0].tokens, want);
  EXPECT_EQ(c->choices[0].finish, MOAT_FINISH_LENGTH);
  EXPECT_EQ(c->usage.prompt_tokens, 1u);
  EXPECT_EQ(c->usage.completion_tokens, 64u);
  EXPECT_EQ(c->choices[0].text.rfind("Once upon a time, there was a little girl named Lily.", 0), 0u)
      << c->choices[0].text;
}

TEST_F(cpu_plugin, batching_does_not_change_greedy_results) {
  auto* b = standard();
  ASSERT_NE(b, nullptr);
  const std::vector<std::string> prompts = {"Once upon a time", "The cat", "Tom and Sue went to the park",
                                            "One day, a little bird", "Lily had a red ball", "The sun was",
                                            "A big dog", "Max liked to"};
  auto make = [&](size_t i) {
    auto rb = std::make_unique<request_builder>(100 + i, MOAT_REQUEST_COMPLETION);
    rb->text_prompt(prompts[i]);
    rb->req.sampling.max_tokens = 40;
    return rb;
  };
  std::vector<std::string> alone;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto rb = make(i);
    alone.push_back(run(b, *rb)->choices[0].text);
  }
  std::vector<std::unique_ptr<request_builder>> rbs;
  std::vector<std::unique_ptr<collector>> cs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    rbs.push_back(make(i));
    cs.push_back(std::make_unique<collector>());
    moat_error err{};
    err.struct_size = sizeof err;
    ASSERT_EQ(lib_->api->submit(b, &rbs.back()->build(), &collector::on_event, cs.back().get(), &err), MOAT_OK);
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_TRUE(cs[i]->wait());
    EXPECT_EQ(cs[i]->choices[0].text, alone[i]) << "prompt " << i;
    EXPECT_FALSE(cs[i]->event_after_terminal);
  }
}

TEST_F(cpu_plugin, chunked_prefill_matches_one_shot_prefill) {
  auto* small = standard(", \"prefill_chunk\": 5");
  auto* big = standard();
  ASSERT_TRUE(small && big);
  request_builder rb(1, MOAT_REQUEST_COMPLETION);
  rb.text_prompt("Once upon a time, there was a little boy named Tim. Tim liked to play with his ball in the "
                 "garden. One day, his ball rolled away");
  rb.req.sampling.max_tokens = 30;
  rb.req.sampling.logprobs = 1;
  auto a = run(small, rb), c = run(big, rb);
  EXPECT_EQ(a->choices[0].tokens, c->choices[0].tokens);
  ASSERT_EQ(a->choices[0].logprobs.size(), c->choices[0].logprobs.size());
  for (size_t i = 0; i < a->choices[0].logprobs.size(); ++i)
    EXPECT_NEAR(a->choices[0].logprobs[i], c->choices[0].logprobs[i], 1e-4);
}

TEST_F(cpu_plugin, stop_strings_cut_and_are_never_emitted) {
  auto* b = standard();
  ASSERT_NE(b, nullptr);
  request_builder rb(1, MOAT_REQUEST_COMPLETION);
  rb.token_prompt({1});
  rb.req.sampling.max_tokens = 64;
  rb.stops = {"Lily."};
  auto c = run(b, rb);
  EXPECT_EQ(c->choices[0].finish, MOAT_FINISH_STOP);
  EXPECT_EQ(c->choices[0].text, "Once upon a time, there was a little girl named ");
}

TEST_F(cpu_plugin, seeds_reproduce_and_n_choices_are_indexed) {
  auto* b = standard();
  ASSERT_NE(b, nullptr);
  auto sample = [&](uint64_t seed) {
    request_builder rb(1, MOAT_REQUEST_COMPLETION);
    rb.text_prompt("Once upon a time");
    rb.text_prompt("The dog");
    rb.req.sampling.temperature = 1.0f;
    rb.req.sampling.seed = seed;
    rb.req.sampling.has_seed = 1;
    rb.req.sampling.n = 2;
    rb.req.sampling.max_tokens = 24;
    rb.req.sampling.logprobs = 3;
    return run(b, rb);
  };
  auto x = sample(5), y = sample(5), z = sample(6);
  ASSERT_EQ(x->choices.size(), 4u);
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(x->choices[i].text, y->choices[i].text) << "choice " << i;
    EXPECT_EQ(x->choices[i].logprobs.size(), x->choices[i].tokens.size());
    for (size_t k : x->choices[i].top_counts) EXPECT_EQ(k, 3u);
    for (float lp : x->choices[i].logprobs) EXPECT_LE(lp, 0.0f);
  }
  EXPECT_NE(x->choices[0].text, x->choices[1].text);
  bool differs = false;
  for (uint32_t i = 0; i < 4; ++i) differs |= x->choices[i].text != z->choices[i].text;
  EXPECT_TRUE(differs);
}

TEST_F(cpu_plugin, chat_uses_the_template_and_streams_text) {
  auto* b = standard();
  ASSERT_NE(b, nullptr);
  request_builder rb(1, MOAT_REQUEST_CHAT);
  rb.message("user", "Once upon a time");
  rb.req.sampling.max_tokens = 20;
  auto c = run(b, rb);
  ASSERT_EQ(c->error, MOAT_OK) << c->error_message;
  EXPECT_FALSE(c->choices[0].text.empty());
  EXPECT_GT(c->usage.prompt_tokens, 1u);
}

TEST_F(cpu_plugin, echo_prepends_the_prompt) {
  auto* b = standard();
  ASSERT_NE(b, nullptr);
  request_builder rb(1, MOAT_REQUEST_COMPLETION);
  rb.text_prompt("Once upon a time");
  rb.req.echo = 1;
  rb.req.sampling.max_tokens = 5;
  auto c = run(b, rb);
  EXPECT_EQ(c->choices[0].text.rfind("Once upon a time", 0), 0u) << c->choices[0].text;
  EXPECT_GT(c->choices[0].text.size(), std::string("Once upon a time").size());
}

TEST_F(cpu_plugin, context_overflow_is_refused_at_submit) {
  auto* b = standard();
  ASSERT_NE(b, nullptr);
  request_builder rb(1, MOAT_REQUEST_COMPLETION);
  rb.token_prompt(std::vector<int32_t>(300, 5));
  collector c;
  moat_error err{};
  err.struct_size = sizeof err;
  EXPECT_EQ(lib_->api->submit(b, &rb.build(), &collector::on_event, &c, &err), MOAT_ERR_CONTEXT_LENGTH);
  EXPECT_NE(std::string(err.message).find("256"), std::string::npos) << err.message;
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(c.terminals, 0);
}

TEST_F(cpu_plugin, cancel_ends_a_running_request_and_frees_its_slot) {
  auto* b = create("{\"path\": \"" + fixture_dir + "\", \"ctx\": 512, \"max_batch\": 1, \"reference\": true}");
  ASSERT_NE(b, nullptr);
  request_builder long_rb(1, MOAT_REQUEST_COMPLETION);
  long_rb.token_prompt({1});
  long_rb.req.sampling.max_tokens = -1;
  long_rb.req.sampling.temperature = 1.0f;
  long_rb.biases = {{2, -100.0f}};  // never EOS: it runs until cancelled or the context is full
  collector a;
  moat_error err{};
  err.struct_size = sizeof err;
  ASSERT_EQ(lib_->api->submit(b, &long_rb.build(), &collector::on_event, &a, &err), MOAT_OK);
  std::this_thread::sleep_for(20ms);
  lib_->api->cancel(b, 1);
  ASSERT_TRUE(a.wait(10s));
  EXPECT_EQ(a.error, MOAT_ERR_CANCELLED);
  request_builder next(2, MOAT_REQUEST_COMPLETION);
  next.token_prompt({1});
  next.req.sampling.max_tokens = 4;
  auto c = run(b, next);
  EXPECT_EQ(c->error, MOAT_OK);
  EXPECT_EQ(c->choices[0].tokens.size(), 4u);
}

TEST_F(cpu_plugin, embeddings_are_unit_vectors_of_the_hidden_size) {
  auto* b = standard();
  ASSERT_NE(b, nullptr);
  request_builder rb(1, MOAT_REQUEST_EMBEDDING);
  rb.text_prompt("a happy dog");
  rb.text_prompt("a happy dog");
  rb.text_prompt("the stars at night");
  auto c = run(b, rb);
  ASSERT_EQ(c->embeddings.size(), 3u);
  double norm = 0, dot_same = 0, dot_other = 0;
  for (size_t i = 0; i < 128; ++i) {
    norm += c->embeddings[0][i] * c->embeddings[0][i];
    dot_same += c->embeddings[0][i] * c->embeddings[1][i];
    dot_other += c->embeddings[0][i] * c->embeddings[2][i];
  }
  EXPECT_EQ(c->embeddings[0].size(), 128u);
  EXPECT_NEAR(norm, 1.0, 1e-5);
  EXPECT_NEAR(dot_same, 1.0, 1e-5);
  EXPECT_LT(dot_other, 0.9999);
}

TEST_F(cpu_plugin, tokenize_and_detokenize_round_trip) {
  auto* b = standard();
  ASSERT_NE(b, nullptr);
  moat_tokenize_request tr{};
  tr.struct_size = sizeof tr;
  std::string text = "Once upon a time";
  tr.text = str(text);
  tr.add_special_tokens = 1;
  std::vector<int32_t> ids;
  moat_error err{};
  err.struct_size = sizeof err;
  auto on_tokens = [](void* u, const int32_t* t, size_t n) { static_cast<std::vector<int32_t>*>(u)->assign(t, t + n); };
  ASSERT_EQ(lib_->api->tokenize(b, &tr, on_tokens, &ids, &err), MOAT_OK);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);  // BOS
  std::vector<int32_t> body(ids.begin() + 1, ids.end());
  std::string out;
  auto on_text = [](void* u, moat_str s) { static_cast<std::string*>(u)->assign(s.data, s.size); };
  ASSERT_EQ(lib_->api->detokenize(b, body.data(), body.size(), on_text, &out, &err), MOAT_OK);
  EXPECT_EQ(out, text);
  int32_t bad = 99999;
  EXPECT_EQ(lib_->api->detokenize(b, &bad, 1, on_text, &out, &err), MOAT_ERR_INVALID_ARGUMENT);
}

TEST_F(cpu_plugin, bad_options_fail_create_with_a_clear_message) {
  moat_error err{};
  EXPECT_EQ(create("{}", &err), nullptr);
  EXPECT_NE(std::string(err.message).find("path"), std::string::npos) << err.message;
  EXPECT_EQ(create("{\"path\": \"/nonexistent/model\"}", &err), nullptr);
  EXPECT_NE(std::string(err.message).find("tinystories"), std::string::npos) << err.message;
  EXPECT_EQ(create("{\"path\": \"" + fixture_dir + "\", \"max_batch\": \"many\"}", &err), nullptr);
  EXPECT_NE(std::string(err.message).find("max_batch"), std::string::npos) << err.message;
}

// The other checkpoint formats through the same glue: llama2.c (tokenizer beside it) and GGUF
// (tokenizer in its metadata).
TEST_F(cpu_plugin, serves_llama2c_and_gguf_checkpoints) {
  const std::string root = fixture_dir.substr(0, fixture_dir.rfind('/'));
  const std::string bin = root + "/llama2c-stories260K/stories260K.bin";
  const std::string gguf = root + "/llama2-tiny-random-gguf/llama-2-tiny-random.gguf";
  if (!std::filesystem::exists(bin) || !std::filesystem::exists(gguf))
    GTEST_SKIP() << "fixtures missing: " << bin << " or " << gguf;

  moat_error err{};
  auto* b = create("{\"path\": \"" + bin + "\", \"ctx\": 256, \"max_batch\": 2}", &err);
  ASSERT_NE(b, nullptr) << err.message;
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load(root + "/llama2c-stories260K/expected_greedy.json");
  std::vector<int32_t> want;
  for (auto v : doc["ids"].get_array()) {
    if (want.size() == 48) break;
    want.push_back(static_cast<int32_t>(int64_t(v)));
  }
  request_builder rb(1, MOAT_REQUEST_COMPLETION);
  rb.token_prompt({1});
  rb.req.sampling.max_tokens = 48;
  auto c = run(b, rb);
  ASSERT_EQ(c->error, MOAT_OK) << c->error_message;
  EXPECT_EQ(c->choices[0].tokens, want);
  EXPECT_EQ(c->choices[0].text.rfind("Once upon a time, there was a little girl named Lily.", 0), 0u)
      << c->choices[0].text;

  auto* g = create("{\"path\": \"" + gguf + "\", \"ctx\": 64, \"max_batch\": 2}", &err);
  ASSERT_NE(g, nullptr) << err.message;
  request_builder chat(2, MOAT_REQUEST_CHAT);
  chat.message("user", "Hello there");
  chat.req.sampling.max_tokens = 8;
  auto r = run(g, chat);
  ASSERT_EQ(r->error, MOAT_OK) << r->error_message;
  EXPECT_GT(r->usage.prompt_tokens, 2u);
  EXPECT_GE(r->usage.completion_tokens, 1u);
}

TEST_F(cpu_plugin, concurrent_submits_and_cancels_each_get_one_terminal_event) {
  auto* b = create("{\"path\": \"" + fixture_dir + "\", \"ctx\": 128, \"max_batch\": 4, \"max_queue\": 1000}");
  ASSERT_NE(b, nullptr);
  constexpr int threads = 4, per_thread = 25;
  std::vector<std::unique_ptr<collector>> cs(threads * per_thread);
  std::vector<moat_status> statuses(cs.size(), MOAT_OK);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        const int k = t * per_thread + i;
        cs[k] = std::make_unique<collector>();
        request_builder rb(1000 + k, k % 3 == 0 ? MOAT_REQUEST_EMBEDDING : MOAT_REQUEST_COMPLETION);
        rb.text_prompt("Once upon a time " + std::to_string(k));
        rb.req.sampling.temperature = 0.8f;
        rb.req.sampling.max_tokens = 10 + k % 20;
        rb.req.sampling.n = 1 + k % 2;
        moat_error err{};
        err.struct_size = sizeof err;
        statuses[k] = lib_->api->submit(b, &rb.build(), &collector::on_event, cs[k].get(), &err);
        if (k % 4 == 1) lib_->api->cancel(b, 1000 + k);
      }
    });
  }
  for (auto& th : pool) th.join();
  for (size_t k = 0; k < cs.size(); ++k) {
    ASSERT_EQ(statuses[k], MOAT_OK) << k;
    ASSERT_TRUE(cs[k]->wait()) << k;
    EXPECT_EQ(cs[k]->terminals, 1) << k;
    EXPECT_TRUE(cs[k]->error == MOAT_OK || (k % 4 == 1 && cs[k]->error == MOAT_ERR_CANCELLED)) << k;
  }
  std::this_thread::sleep_for(20ms);
  for (auto& c : cs) EXPECT_FALSE(c->event_after_terminal);
  moat_stats st{};
  st.struct_size = sizeof st;
  ASSERT_EQ(lib_->api->stats(b, &st), MOAT_OK);
  EXPECT_EQ(st.requests_running, 0u);
  EXPECT_EQ(st.requests_waiting, 0u);
}

TEST_F(cpu_plugin, destroy_sends_open_requests_their_terminal_event) {
  auto* b = create("{\"path\": \"" + fixture_dir + "\", \"ctx\": 512, \"max_batch\": 1}");
  ASSERT_NE(b, nullptr);
  std::vector<std::unique_ptr<request_builder>> rbs;
  std::vector<std::unique_ptr<collector>> cs;
  for (int i = 0; i < 3; ++i) {
    rbs.push_back(std::make_unique<request_builder>(i + 1, MOAT_REQUEST_COMPLETION));
    rbs.back()->token_prompt({1});
    rbs.back()->req.sampling.max_tokens = -1;
    cs.push_back(std::make_unique<collector>());
    moat_error err{};
    err.struct_size = sizeof err;
    ASSERT_EQ(lib_->api->submit(b, &rbs.back()->build(), &collector::on_event, cs.back().get(), &err), MOAT_OK);
  }
  lib_->api->destroy(b);
  instances_.clear();
  for (auto& c : cs) EXPECT_EQ(c->terminals, 1);
}

}  // namespace
}  // namespace moat::testing

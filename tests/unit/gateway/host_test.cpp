// The plugin host against a fake plugin built as a real shared library: ABI refusal, create
// errors surfaced, events delivered on the strand with metrics, submit errors, cancel, the
// max_queue bound, the request timeout. host_queue_test.cpp: a call's event queue.
#include "host/host.h"

#include <gtest/gtest.h>

#include <thread>

#include "host/completions.h"
#include "host_fixture.h"

namespace {

using namespace moat;
using namespace moat::host_test;

TEST(plugin, wrong_abi_version_is_refused_with_both_versions) {
  const auto bad = plugin_dir / "libmoat_fake_badabi.so";
  if (!std::filesystem::exists(bad)) GTEST_SKIP() << "fake plugin not built";
  try {
    host::load_plugin(bad);
    FAIL() << "expected a host_error";
  } catch (const host::host_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(bad.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("plugin ABI version 99 does not match this moat's ABI version 1"),
              std::string::npos)
        << msg;
  }
}

TEST(plugin, missing_file_and_non_plugin_are_clear_errors) {
  try {
    host::load_plugin("/nonexistent/libmoat_x.so");
    FAIL();
  } catch (const host::host_error& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/libmoat_x.so: no such plugin file");
  }
  // A shared library that is not a plugin: the moat_test_fake's symbol is missing from libm.
  for (const char* lib : {"/lib/x86_64-linux-gnu/libm.so.6", "/lib/aarch64-linux-gnu/libm.so.6"}) {
    if (!std::filesystem::exists(lib)) continue;
    try {
      host::load_plugin(lib);
      FAIL();
    } catch (const host::host_error& e) {
      EXPECT_NE(std::string(e.what()).find("no moat_backend_entry symbol"), std::string::npos)
          << e.what();
    }
  }
}

TEST(plugin, default_path_is_beside_the_executable) {
  EXPECT_EQ(host::default_plugin_path("/opt/moat/bin", "cpu"), "/opt/moat/lib/moat/libmoat_cpu.so");
  EXPECT_STREQ(host::status_name(MOAT_ERR_BUSY), "MOAT_ERR_BUSY");
}

TEST_F(host_fixture, create_error_is_surfaced_with_model_and_status) {
  try {
    make_backend(R"({"fail_create":true})");
    FAIL() << "expected a host_error";
  } catch (const host::host_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("test.yaml:3: models[0]: model 'fake-model'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("MOAT_ERR_IO: cannot read weights"), std::string::npos) << msg;
  }
}

TEST_F(host_fixture, events_arrive_on_the_strand_and_feed_metrics) {
  auto& b = make_backend("{}");
  EXPECT_EQ(b.caps().owned_by, "fake");
  EXPECT_TRUE(b.caps().has(MOAT_CAP_TOKENIZE));
  auto sink = std::make_shared<recording_sink>(strand_);
  auto out = submit(b, sink);
  ASSERT_EQ(out.status, MOAT_OK) << out.message;
  ASSERT_EQ(sink->done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  // A whole answer: its two deltas come joined.
  ASSERT_EQ(sink->events.size(), 3u);
  EXPECT_TRUE(sink->on_strand);
  EXPECT_EQ(sink->events[0].kind, MOAT_EVENT_DELTA);
  EXPECT_EQ(sink->events[0].text, "hello world");
  EXPECT_EQ(sink->events[1].kind, MOAT_EVENT_FINISH);
  EXPECT_EQ(sink->events[1].finish_reason, MOAT_FINISH_STOP);
  EXPECT_EQ(sink->events[2].kind, MOAT_EVENT_DONE);
  EXPECT_EQ(sink->events[2].usage.prompt_tokens, 3u);
  auto* m = registry_.model("fake-model");
  EXPECT_EQ(m->ttft.count(), 1u);
  EXPECT_EQ(m->e2e_latency.count(), 1u);
  EXPECT_EQ(m->tpot.count(), 1u);
  EXPECT_EQ(m->prompt_tokens.value(), 3u);
  EXPECT_EQ(m->generation_tokens.value(), 2u);
  EXPECT_EQ(m->success[static_cast<size_t>(metrics::finish::stop)].value(), 1u);
  // The slot is free again once the terminal event went through.
  for (int i = 0; i < 100 && b.in_flight() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(b.in_flight(), 0);
}

// A streamed answer's deltas reach the sink as the backend sends them; a whole (non-streamed)
// answer's are joined and handed over with its terminal event in one drain (its sink only
// collects until DONE), yet time to first token still counts from the first delta's arrival.
TEST_F(host_fixture, streamed_deltas_come_at_once_whole_answers_with_their_end) {
  using std::chrono::milliseconds;
  auto& b = make_backend(R"({"slow_second":true})");
  auto streamed = std::make_shared<recording_sink>(strand_);
  ASSERT_EQ(submit(b, streamed, true).status, MOAT_OK);
  ASSERT_EQ(streamed->done.get_future().wait_for(std::chrono::seconds(5)),
            std::future_status::ready);
  ASSERT_EQ(streamed->events.size(), 4u);
  EXPECT_EQ(streamed->events[0].text, "hello");
  EXPECT_GE(streamed->arrived[3] - streamed->arrived[0], milliseconds(80));

  auto whole = std::make_shared<recording_sink>(strand_);
  ASSERT_EQ(submit(b, whole, false).status, MOAT_OK);
  ASSERT_EQ(whole->done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  ASSERT_EQ(whole->events.size(), 3u);
  EXPECT_TRUE(whole->on_strand);
  EXPECT_EQ(whole->events[0].text, "hello world");
  EXPECT_EQ(whole->events[1].kind, MOAT_EVENT_FINISH);
  EXPECT_EQ(whole->events[2].kind, MOAT_EVENT_DONE);
  EXPECT_LT(whole->arrived[2] - whole->arrived[0], milliseconds(50));

  // Both answers: the first delta came at once, the rest 100 ms later.
  auto* m = registry_.model("fake-model");
  EXPECT_EQ(m->ttft.count(), 2u);
  EXPECT_LT(m->ttft.sum(), 0.080);
  EXPECT_GE(m->tpot.sum(), 2 * 0.080);
}

// Interleaved choices: a whole answer joins each choice's deltas (text and logprobs, in the
// choice's own order) into one, placed where its first delta was; a streamed one gets them as sent.
TEST_F(host_fixture, whole_answers_join_the_deltas_of_each_choice) {
  auto& b = make_backend(R"({"two_choices":true})");
  auto whole = std::make_shared<recording_sink>(strand_);
  ASSERT_EQ(submit(b, whole, false).status, MOAT_OK);
  ASSERT_EQ(whole->done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  ASSERT_EQ(whole->events.size(), 5u);
  const auto& c0 = whole->events[0];
  const auto& c1 = whole->events[1];
  EXPECT_EQ(c0.kind, MOAT_EVENT_DELTA);
  EXPECT_EQ(c0.index, 0u);
  EXPECT_EQ(c0.text, "ac");
  ASSERT_EQ(c0.logprobs.size(), 2u);
  EXPECT_EQ(c0.logprobs[0].chosen.token, "a");
  EXPECT_DOUBLE_EQ(c0.logprobs[0].chosen.logprob, -0.5);
  EXPECT_EQ(c0.logprobs[1].chosen.token, "c");
  ASSERT_EQ(c0.logprobs[1].top.size(), 1u);
  EXPECT_EQ(c0.logprobs[1].top[0].token, "zz");
  EXPECT_EQ(c1.kind, MOAT_EVENT_DELTA);
  EXPECT_EQ(c1.index, 1u);
  EXPECT_EQ(c1.text, "bd");  // " d" came after choice 0's FINISH: still joined to choice 1
  ASSERT_EQ(c1.logprobs.size(), 2u);
  EXPECT_DOUBLE_EQ(c1.logprobs[1].chosen.logprob, -2.0);
  EXPECT_EQ(whole->events[2].kind, MOAT_EVENT_FINISH);
  EXPECT_EQ(whole->events[2].index, 0u);
  EXPECT_EQ(whole->events[3].kind, MOAT_EVENT_FINISH);
  EXPECT_EQ(whole->events[3].index, 1u);
  EXPECT_EQ(whole->events[4].kind, MOAT_EVENT_DONE);

  auto streamed = std::make_shared<recording_sink>(strand_);
  ASSERT_EQ(submit(b, streamed, true).status, MOAT_OK);
  ASSERT_EQ(streamed->done.get_future().wait_for(std::chrono::seconds(5)),
            std::future_status::ready);
  ASSERT_EQ(streamed->events.size(), 7u);
  EXPECT_EQ(streamed->events[0].text, "a");
  EXPECT_EQ(streamed->events[2].text, "c");
  EXPECT_EQ(streamed->events[4].text, "d");
  EXPECT_EQ(streamed->events[4].logprobs.size(), 1u);
}

TEST_F(host_fixture, submit_error_comes_back_with_status_and_message) {
  auto& b = make_backend(R"({"fail_submit":true})");
  auto out = submit(b, std::make_shared<recording_sink>(strand_));
  EXPECT_EQ(out.status, MOAT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(out.message, "fake refuses this request");
  EXPECT_EQ(out.handle, nullptr);
  EXPECT_EQ(b.in_flight(), 0);
}

TEST_F(host_fixture, cancel_reaches_the_plugin_and_the_terminal_event_still_comes) {
  auto& b = make_backend(R"({"hang":true})");
  auto sink = std::make_shared<recording_sink>(strand_);
  auto out = submit(b, sink);
  ASSERT_EQ(out.status, MOAT_OK);
  // Watched by the deadline sweep while it runs, and no longer once its terminal event is in.
  auto& queue = host::completion_queue::of(strand_);
  EXPECT_EQ(queue.watched(), 1u);
  const int before = plugin_cancels();
  net::post(strand_, [c = out.handle] { c->cancel(); });
  ASSERT_EQ(sink->done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(queue.watched(), 0u);
  EXPECT_EQ(plugin_cancels(), before + 1);
  ASSERT_EQ(sink->events.size(), 1u);
  EXPECT_EQ(sink->events[0].error_code, MOAT_ERR_CANCELLED);
  EXPECT_EQ(
      registry_.model("fake-model")->success[static_cast<size_t>(metrics::finish::abort)].value(),
      1u);
}

TEST_F(host_fixture, max_queue_bounds_requests_in_flight) {
  auto& b = make_backend(R"({"hang":true})", 2);
  auto s1 = std::make_shared<recording_sink>(strand_);
  auto s2 = std::make_shared<recording_sink>(strand_);
  auto s3 = std::make_shared<recording_sink>(strand_);
  auto o1 = submit(b, s1);
  auto o2 = submit(b, s2);
  auto o3 = submit(b, s3);
  EXPECT_EQ(o1.status, MOAT_OK);
  EXPECT_EQ(o2.status, MOAT_OK);
  EXPECT_EQ(o3.status, MOAT_ERR_BUSY);
  EXPECT_NE(o3.message.find("max_queue"), std::string::npos);
  EXPECT_EQ(b.in_flight(), 2);
  EXPECT_EQ(b.live().queue_depth, 2);
  net::post(strand_, [c = o1.handle] { c->cancel(); });
  ASSERT_EQ(s1->done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  // One slot freed: the next submit is accepted.
  auto o4 = submit(b, std::make_shared<recording_sink>(strand_));
  EXPECT_EQ(o4.status, MOAT_OK);
}

TEST_F(host_fixture, a_backend_that_never_finishes_is_cut_off_with_a_timeout) {
  auto& b = make_backend(R"({"hang":true})", 16, std::chrono::milliseconds(100));
  auto sink = std::make_shared<recording_sink>(strand_);
  const int before = plugin_cancels();
  auto out = submit(b, sink);
  ASSERT_EQ(out.status, MOAT_OK);
  ASSERT_EQ(sink->done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  ASSERT_EQ(sink->events.size(), 1u);
  EXPECT_EQ(sink->events[0].error_code, MOAT_ERR_TIMEOUT);
  EXPECT_EQ(plugin_cancels(), before + 1);
}

// The request timeout comes from one coarse sweep per io_context, not a timer per call: two
// hung calls with the io_context's own executor (no strand) both time out, neither stays
// watched, and the sweep stops re-arming once nothing is watched, so an io_context without
// other work runs out of it (run() returns).
TEST(deadline_sweep, times_out_hung_calls_then_lets_the_context_run_out_of_work) {
  if (!std::filesystem::exists(fake_path)) GTEST_SKIP() << "fake plugin not built: " << fake_path;
  struct timeout_sink : host::event_sink {
    void on_event(host::owned_event&& ev) override {
      if (ev.terminal()) codes.push_back(ev.error_code);
    }
    std::vector<moat_status> codes;
  };
  metrics::registry registry{{"fake-model"}, "t", "t"};
  config::model_config m;
  m.name = "fake-model";
  m.backend = "fake";
  m.options_json = R"({"hang":true})";
  m.max_queue = 16;
  m.where = "test.yaml:3: models[0]";
  const auto timeout = std::chrono::milliseconds(150);
  auto b =
      std::make_unique<host::backend>(m, host::load_plugin(fake_path), "/tmp", registry, timeout);
  b->create();
  net::io_context io;
  const net::any_io_executor ex = io.get_executor();
  auto sink1 = std::make_shared<timeout_sink>();
  auto sink2 = std::make_shared<timeout_sink>();
  openai::chat_request req;
  req.model = "fake-model";
  req.messages.push_back({"user", "hi", ""});
  host::request_builder builder;
  const auto started = std::chrono::steady_clock::now();
  auto o1 = b->submit(builder.chat(req, "{}"), sink1, ex);
  auto o2 = b->submit(builder.chat(req, "{}"), sink2, ex);
  ASSERT_EQ(o1.status, MOAT_OK);
  ASSERT_EQ(o2.status, MOAT_OK);
  auto& queue = host::completion_queue::of(ex);
  EXPECT_EQ(queue.watched(), 2u);
  o1.handle.reset();
  o2.handle.reset();

  auto ran = std::async(std::launch::async, [&] { io.run(); });
  const bool ran_out = ran.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  if (!ran_out) io.stop();  // still fail, but do not hang the test binary
  ran.wait();
  const auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(ran_out) << "the sweep kept the io_context busy with nothing watched";
  EXPECT_GE(elapsed, timeout);
  ASSERT_EQ(sink1->codes.size(), 1u);
  ASSERT_EQ(sink2->codes.size(), 1u);
  EXPECT_EQ(sink1->codes[0], MOAT_ERR_TIMEOUT);
  EXPECT_EQ(sink2->codes[0], MOAT_ERR_TIMEOUT);
  EXPECT_EQ(queue.watched(), 0u);
  b.reset();  // the fake's cancelled events may still be posted into `io`: dropped with it
}

TEST_F(host_fixture, tokenize_and_detokenize) {
  auto& b = make_backend("{}");
  openai::tokenize_request req;
  req.prompt = "AB";
  host::request_builder builder;
  std::vector<int32_t> tokens;
  std::string msg;
  ASSERT_EQ(b.tokenize(builder.tokenize(req), tokens, msg), MOAT_OK);
  EXPECT_EQ(tokens, (std::vector<int32_t>{65, 66}));
  std::string text;
  ASSERT_EQ(b.detokenize({72, 105}, text, msg), MOAT_OK);
  EXPECT_EQ(text, "Hi");
  EXPECT_EQ(b.detokenize({9999}, text, msg), MOAT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(msg, "token id out of range");
}

TEST(plugin_host, loads_models_and_names_the_model_on_failure) {
  if (!std::filesystem::exists(fake_path)) GTEST_SKIP() << "fake plugin not built";
  auto cfg = config::parse_config("models:\n  - name: a\n    backend: fake\n    plugin: " +
                                      fake_path.string() + "\n  - name: b\n    backend: nosuch\n",
                                  "/tmp/x.yaml");
  metrics::registry reg({"a", "b"}, "t", "t");
  host::plugin_host h(cfg, "/nonexistent/bin", reg);
  EXPECT_EQ(h.find("a"), nullptr);  // not loaded yet
  try {
    h.load_all();
    FAIL() << "expected a host_error";
  } catch (const host::host_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("/tmp/x.yaml:5: models[1]: model 'b' (backend nosuch): "
                       "/nonexistent/lib/moat/libmoat_nosuch.so: no such plugin file"),
              std::string::npos)
        << msg;
  }
  EXPECT_FALSE(h.loaded());

  auto good = config::parse_config(
      "models:\n  - name: a\n    backend: fake\n    plugin: " + fake_path.string() + "\n",
      "/tmp/x.yaml");
  host::plugin_host h2(good, "/nonexistent/bin", reg);
  h2.load_all();
  ASSERT_TRUE(h2.loaded());
  ASSERT_NE(h2.find("a"), nullptr);
  EXPECT_EQ(h2.find("zzz"), nullptr);
  EXPECT_EQ(h2.backends().size(), 1u);
  EXPECT_EQ(h2.live().size(), 1u);
}

}  // namespace

// The plugin host against a fake plugin built as a real shared library: ABI refusal, create
// errors surfaced, events delivered on the strand with metrics, submit errors, cancel, the
// max_queue bound, the request timeout, and bursts of events sent by the test itself.
#include "host/host.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <future>
#include <optional>
#include <thread>

#include "host/completions.h"
#include "host/request_builder.h"

namespace {

namespace net = boost::asio;
using namespace moat;

const std::filesystem::path plugin_dir = FAKE_PLUGIN_DIR;
const std::filesystem::path fake_path = plugin_dir / "libmoat_fake.so";

int plugin_cancels() {
  void* h = dlopen(fake_path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (!h) return -1;
  auto fn = reinterpret_cast<int (*)()>(dlsym(h, "fake_plugin_cancels"));
  const int n = fn ? fn() : -1;
  dlclose(h);
  return n;
}

// Collects events and when each arrived; checks each arrives on the strand; resolves when the
// terminal one comes.
class recording_sink : public host::event_sink {
 public:
  explicit recording_sink(net::strand<net::io_context::executor_type> strand) : strand_(strand) {}
  void on_event(host::owned_event&& ev) override {
    on_strand = on_strand && strand_.running_in_this_thread();
    const bool terminal = ev.terminal();
    events.push_back(std::move(ev));
    arrived.push_back(std::chrono::steady_clock::now());
    if (terminal) done.set_value();
  }
  std::vector<host::owned_event> events;
  std::vector<std::chrono::steady_clock::time_point> arrived;
  bool on_strand = true;
  std::promise<void> done;

 private:
  net::strand<net::io_context::executor_type> strand_;
};

class host_fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(fake_path)) GTEST_SKIP() << "fake plugin not built: " << fake_path;
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    backend_.reset();
    work_.reset();
    // The deadline sweep's timer stays armed up to a tick (1 s here) after the last call: the
    // test is over, so the context need not run out of work by itself (one test checks that).
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  host::backend& make_backend(const std::string& options, uint32_t max_queue = 1024,
                              std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    config::model_config m;
    m.name = "fake-model";
    m.backend = "fake";
    m.options_json = options;
    m.max_queue = max_queue;
    m.where = "test.yaml:3: models[0]";
    backend_ = std::make_unique<host::backend>(m, host::load_plugin(fake_path), "/tmp", registry_, timeout);
    backend_->create();
    return *backend_;
  }

  // Submits a chat request on the strand, as a handler would.
  host::submit_outcome submit(host::backend& b, std::shared_ptr<recording_sink> sink,
                              bool stream = false) {
    std::promise<host::submit_outcome> out;
    net::post(strand_, [&] {
      openai::chat_request req;
      req.model = "fake-model";
      req.stream = stream;
      req.messages.push_back({"user", "hi", ""});
      host::request_builder builder;
      out.set_value(b.submit(builder.chat(req, "{}"), sink, strand_));
    });
    return out.get_future().get();
  }

  metrics::registry registry_{{"fake-model"}, "t", "t"};
  net::io_context io_;
  net::executor_work_guard<net::io_context::executor_type> work_ = net::make_work_guard(io_);
  net::strand<net::io_context::executor_type> strand_ = net::make_strand(io_);
  std::thread thread_;
  std::unique_ptr<host::backend> backend_;
};

TEST(plugin, wrong_abi_version_is_refused_with_both_versions) {
  const auto bad = plugin_dir / "libmoat_fake_badabi.so";
  if (!std::filesystem::exists(bad)) GTEST_SKIP() << "fake plugin not built";
  try {
    host::load_plugin(bad);
    FAIL() << "expected a host_error";
  } catch (const host::host_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(bad.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("plugin ABI version 99 does not match this moat's ABI version 1"), std::string::npos)
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
      EXPECT_NE(std::string(e.what()).find("no moat_backend_entry symbol"), std::string::npos) << e.what();
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
  for (int i = 0; i < 100 && b.in_flight() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
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
  EXPECT_EQ(registry_.model("fake-model")->success[static_cast<size_t>(metrics::finish::abort)].value(), 1u);
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
  auto cfg = config::parse_config("models:\n  - name: a\n    backend: fake\n    plugin: " + fake_path.string() +
                                      "\n  - name: b\n    backend: nosuch\n",
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

  auto good = config::parse_config("models:\n  - name: a\n    backend: fake\n    plugin: " + fake_path.string() + "\n",
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

// An in-process plugin whose events the test sends itself, from its own thread: with the
// strand held busy meanwhile, a call's queue has to keep long bursts in order, and reuse its
// storage after a drain.
struct scripted_plugin {
  static inline moat_event_fn fn = nullptr;
  static inline void* user = nullptr;
  static moat_status create(const moat_backend_config*, moat_backend** out, moat_error*) noexcept {
    static int instance = 0;
    *out = reinterpret_cast<moat_backend*>(&instance);
    return MOAT_OK;
  }
  static void destroy(moat_backend*) noexcept {}
  static moat_status capabilities(moat_backend*, moat_capabilities* caps) noexcept {
    caps->flags = MOAT_CAP_CHAT | MOAT_CAP_LOGPROBS;
    caps->owned_by = moat_str{"scripted", 8};
    return MOAT_OK;
  }
  static moat_status submit(moat_backend*, const moat_request*, moat_event_fn f, void* u,
                            moat_error*) noexcept {
    fn = f;
    user = u;
    return MOAT_OK;
  }
  static void cancel(moat_backend*, uint64_t) noexcept {}

  static std::shared_ptr<host::plugin_library> library() {
    moat_backend_api api{};
    api.struct_size = sizeof api;
    api.abi_version = MOAT_BACKEND_ABI_VERSION;
    api.name = moat_str{"scripted", 8};
    api.create = &create;
    api.destroy = &destroy;
    api.capabilities = &capabilities;
    api.submit = &submit;
    api.cancel = &cancel;
    return std::make_shared<host::plugin_library>("scripted", nullptr, api);
  }

  // A delta of choice `index`; with a logprob of -0.5 when `logprob` (its own text as token).
  static void delta(uint32_t index, const std::string& text, bool logprob = false) {
    moat_event ev{};
    ev.struct_size = sizeof ev;
    ev.kind = MOAT_EVENT_DELTA;
    ev.index = index;
    ev.text = moat_str{text.data(), text.size()};
    moat_logprob_entry entry{};
    entry.chosen.text = ev.text;
    entry.chosen.logprob = -0.5f;
    if (logprob) {
      ev.logprobs = &entry;
      ev.logprob_count = 1;
    }
    fn(user, &ev);
  }
  static void event(moat_event_kind kind, uint32_t index = 0) {
    moat_event ev{};
    ev.struct_size = sizeof ev;
    ev.kind = kind;
    ev.index = index;
    ev.finish_reason = MOAT_FINISH_STOP;
    ev.usage = moat_usage{7, 40};
    fn(user, &ev);
  }
};

class scripted_fixture : public host_fixture {
 protected:
  host::backend& make_scripted_backend() {
    config::model_config m;
    m.name = "fake-model";
    m.backend = "scripted";
    m.max_queue = 16;
    m.where = "test.yaml:3: models[0]";
    backend_ = std::make_unique<host::backend>(m, scripted_plugin::library(), "/tmp", registry_,
                                               std::chrono::seconds(30));
    backend_->create();
    return *backend_;
  }
  // Keeps the strand busy until the returned promise is set: events queue meanwhile.
  std::promise<void> hold_strand() {
    std::promise<void> release;
    std::promise<void> held;
    net::post(strand_, [gate = release.get_future().share(), &held] {
      held.set_value();
      gate.wait();
    });
    held.get_future().wait();
    return release;
  }
  // How many events `sink` has, read on the strand (after what is queued there before).
  size_t delivered(const std::shared_ptr<recording_sink>& sink) {
    std::promise<size_t> n;
    net::post(strand_, [&] { n.set_value(sink->events.size()); });
    return n.get_future().get();
  }
};

TEST_F(scripted_fixture, streamed_bursts_beyond_the_ring_keep_their_order) {
  auto& b = make_scripted_backend();
  auto sink = std::make_shared<recording_sink>(strand_);
  auto out = submit(b, sink, true);
  ASSERT_EQ(out.status, MOAT_OK) << out.message;
  std::vector<std::string> sent;
  const auto burst = [&](const std::string& prefix, int count) {
    for (int i = 0; i < count; ++i) {
      // Long enough texts to live on the heap in some events, logprobs in every fifth.
      sent.push_back(prefix + std::to_string(i) + (i % 3 == 0 ? std::string(40, '.') : ""));
      scripted_plugin::delta(0, sent.back(), i % 5 == 0);
    }
  };
  auto release = hold_strand();
  burst("a", 40);  // one drain takes all 40
  release.set_value();
  for (int i = 0; i < 200 && delivered(sink) < 40; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  release = hold_strand();
  burst("b", 21);  // into the storage the first drain handed back
  release.set_value();
  burst("c", 3);  // while that drain may be running
  scripted_plugin::event(MOAT_EVENT_FINISH);
  scripted_plugin::event(MOAT_EVENT_DONE);
  ASSERT_EQ(sink->done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  ASSERT_EQ(sink->events.size(), sent.size() + 2);
  for (size_t i = 0; i < sent.size(); ++i) {
    const auto& ev = sink->events[i];
    EXPECT_EQ(ev.kind, MOAT_EVENT_DELTA) << i;
    EXPECT_EQ(ev.text, sent[i]) << i;
    const bool with_logprob = std::stoi(sent[i].substr(1)) % 5 == 0;
    ASSERT_EQ(ev.logprobs.size(), with_logprob ? 1u : 0u) << i;
    if (with_logprob) {
      EXPECT_EQ(ev.logprobs[0].chosen.token, sent[i]) << i;
    }
    EXPECT_TRUE(ev.embedding.empty());
    EXPECT_TRUE(ev.error_message.empty());
  }
  EXPECT_EQ(sink->events[sent.size()].kind, MOAT_EVENT_FINISH);
  EXPECT_EQ(sink->events[sent.size()].finish_reason, MOAT_FINISH_STOP);
  EXPECT_EQ(sink->events.back().kind, MOAT_EVENT_DONE);
  EXPECT_EQ(sink->events.back().usage.completion_tokens, 40u);
  EXPECT_TRUE(sink->on_strand);
}

// A whole answer with many choices: each choice's later deltas join its first one (text and
// logprobs), the FINISHes keep their order, and it all comes with DONE.
TEST_F(scripted_fixture, whole_answers_join_deltas_in_the_ring_and_past_it) {
  auto& b = make_scripted_backend();
  auto sink = std::make_shared<recording_sink>(strand_);
  auto out = submit(b, sink, false);
  ASSERT_EQ(out.status, MOAT_OK) << out.message;
  constexpr uint32_t choices = 24;
  // Built by append: GCC 12 warns falsely (-Wrestrict) on a "literal" + std::string chain.
  auto text = [](uint32_t i, const char* tail) {
    return std::string("a").append(std::to_string(i)).append(tail);
  };
  for (uint32_t i = 0; i < choices; ++i) scripted_plugin::delta(i, text(i, ""), true);
  for (uint32_t i = 0; i < choices; ++i) scripted_plugin::delta(i, "-b", true);
  for (uint32_t i = 0; i < choices; ++i) scripted_plugin::event(MOAT_EVENT_FINISH, i);
  scripted_plugin::event(MOAT_EVENT_DONE);
  ASSERT_EQ(sink->done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  ASSERT_EQ(sink->events.size(), 2 * choices + 1);
  for (uint32_t i = 0; i < choices; ++i) {
    const auto& d = sink->events[i];
    EXPECT_EQ(d.kind, MOAT_EVENT_DELTA);
    EXPECT_EQ(d.index, i);
    EXPECT_EQ(d.text, text(i, "-b"));
    ASSERT_EQ(d.logprobs.size(), 2u);
    EXPECT_EQ(d.logprobs[1].chosen.token, "-b");
    EXPECT_EQ(sink->events[choices + i].kind, MOAT_EVENT_FINISH);
    EXPECT_EQ(sink->events[choices + i].index, i);
  }
  EXPECT_EQ(sink->events.back().kind, MOAT_EVENT_DONE);
}

// completion_queue::of remembers, per thread, the last context it was asked about: a context
// made after that one was destroyed (often at the same address) still gets its own queue.
TEST(completion_queue, a_new_context_gets_its_own_queue) {
  std::optional<net::io_context> io;
  io.emplace();
  host::completion_queue& first = host::completion_queue::of(io->get_executor());
  EXPECT_EQ(&first, &host::completion_queue::of(io->get_executor()));
  EXPECT_EQ(&first, &net::use_service<host::completion_queue>(*io));
  for (int i = 0; i < 3; ++i) {
    io.reset();
    io.emplace();
    EXPECT_EQ(&host::completion_queue::of(io->get_executor()),
              &net::use_service<host::completion_queue>(*io));
  }
}

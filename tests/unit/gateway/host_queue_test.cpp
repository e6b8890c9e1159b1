// A call's event queue, with events the test sends itself from an in-process plugin while the
// strand is held busy: long bursts keep their order, a whole answer's deltas join per choice,
// and the completion queue a context gets is its own.
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <cstring>
#include <optional>
#include <thread>

#include "host/block_cache.h"
#include "host/completions.h"
#include "host_fixture.h"

namespace {

using namespace moat;
using namespace moat::host_test;

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
  // What submit writes into the caller's error: `message` without its terminating NUL, and
  // returns `status` (an accepted request's callback is kept only with MOAT_OK).
  static inline std::string message;
  static inline moat_status status = MOAT_OK;
  static moat_status submit(moat_backend*, const moat_request*, moat_event_fn f, void* u,
                            moat_error* err) noexcept {
    std::memcpy(err->message, message.data(), std::min(message.size(), sizeof err->message));
    if (status != MOAT_OK) return status;
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
    return make_backend("", 16, std::chrono::seconds(30), scripted_plugin::library());
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

// submit() gives the plugin a cleared error every time: a message written with MOAT_OK is not
// shown, and a later failure's message, even one left without its NUL, is exactly its own.
TEST_F(scripted_fixture, each_submit_sees_a_cleared_error_message) {
  auto& b = make_scripted_backend();
  scripted_plugin::message = "a long note written although the request was accepted";
  auto sink = std::make_shared<recording_sink>(strand_);
  auto ok = submit(b, sink, true);
  ASSERT_EQ(ok.status, MOAT_OK);
  EXPECT_EQ(ok.message, "");
  scripted_plugin::event(MOAT_EVENT_DONE);
  ASSERT_EQ(sink->done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);

  scripted_plugin::message = "short";
  scripted_plugin::status = MOAT_ERR_INVALID_ARGUMENT;
  auto refused = submit(b, std::make_shared<recording_sink>(strand_), true);
  EXPECT_EQ(refused.status, MOAT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(refused.message, "short");
  scripted_plugin::message = "";
  auto plain = submit(b, std::make_shared<recording_sink>(strand_), true);
  EXPECT_EQ(plain.status, MOAT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(plain.message.find("refused"), std::string::npos) << plain.message;
  scripted_plugin::status = MOAT_OK;
  EXPECT_EQ(b.in_flight(), 0);
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

// A thread's block cache hands back what it kept, newest first, keeps at most max_kept, and
// keeps a block another thread made; blocks it does not keep go back to the allocator. (Under
// AddressSanitizer the cache keeps nothing, so the sanitizer sees every free.)
TEST(block_cache, keeps_freed_blocks_for_the_thread_up_to_its_bound) {
  using cache = host::block_cache<200>;
  std::vector<void*> blocks;
  for (uint32_t i = 0; i < cache::max_kept + 8; ++i) blocks.push_back(cache::take());
  for (void* b : blocks) std::memset(b, 0xab, 200);  // whole blocks are writable
  for (void* b : blocks) cache::give(b);
  std::vector<void*> again;
  for (uint32_t i = 0; i < cache::max_kept + 8; ++i) again.push_back(cache::take());
  for (void* b : again) cache::give(b);
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "the cache keeps nothing under AddressSanitizer";
#endif
  // The first max_kept blocks given were kept (the cache was full for the rest), and come back
  // newest first.
  for (uint32_t i = 0; i < cache::max_kept; ++i)
    EXPECT_EQ(again[i], blocks[cache::max_kept - 1 - i]);

  // A block made on another thread is kept by the thread that frees it.
  void* made_there = nullptr;
  std::thread([&] { made_there = cache::take(); }).join();
  void* room = cache::take();  // the cache is full: one out, so that it keeps the next
  cache::give(made_there);
  EXPECT_EQ(cache::take(), made_there);
  cache::give(made_there);
  cache::give(room);
}

// Many calls, streamed and whole, made and freed on one thread reuse their blocks, and a block
// reused holds a fresh call: every answer is whole and in order.
TEST_F(scripted_fixture, reused_call_blocks_start_fresh) {
  const auto word = [](int w) {
    std::string out(1, 'w');
    out.push_back(static_cast<char>('0' + w));
    out.push_back(' ');
    return out;
  };
  auto& b = make_scripted_backend();
  for (int round = 0; round < 40; ++round) {
    const bool streamed = round % 2 == 0;
    auto sink = std::make_shared<recording_sink>(strand_);
    auto out = submit(b, sink, streamed);
    ASSERT_EQ(out.status, MOAT_OK) << out.message;
    const int words = 1 + round % 7;
    for (int w = 0; w < words; ++w) scripted_plugin::delta(0, word(w));
    scripted_plugin::event(MOAT_EVENT_FINISH);
    scripted_plugin::event(MOAT_EVENT_DONE);
    ASSERT_EQ(sink->done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
    const size_t deltas = streamed ? static_cast<size_t>(words) : 1;
    ASSERT_EQ(sink->events.size(), deltas + 2) << "round " << round;
    std::string text;
    for (size_t i = 0; i < deltas; ++i) text += sink->events[i].text;
    std::string want;
    for (int w = 0; w < words; ++w) want += word(w);
    EXPECT_EQ(text, want) << "round " << round;
    EXPECT_EQ(sink->events[deltas].kind, MOAT_EVENT_FINISH);
    EXPECT_EQ(sink->events[deltas + 1].kind, MOAT_EVENT_DONE);
  }
  EXPECT_EQ(b.in_flight(), 0);
  auto* m = registry_.model("fake-model");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->ttft.count(), 40u);
}

}  // namespace

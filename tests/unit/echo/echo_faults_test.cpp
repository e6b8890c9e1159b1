// The echo plugin's injected faults, cancellation, destroy with requests in flight, and many
// concurrent delayed streams: exactly one terminal event per accepted submit, always.
#include <memory>

#include "echo_harness.h"

namespace moat::echo::testing {
namespace {

using namespace std::chrono_literals;

size_t count_kind(const std::vector<recorded_event>& events, moat_event_kind kind) {
  size_t n = 0;
  for (const auto& e : events) n += e.kind == kind ? 1 : 0;
  return n;
}

using EchoFaults = echo_fixture;

TEST_F(EchoFaults, FailBeforeFirstSendsOnlyAnError) {
  moat_backend* b = create(R"({"fault":"fail_before_first"})");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_CHAT, 1);
  req.message("user", "a b c");
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  const auto events = rec.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, MOAT_EVENT_ERROR);
  EXPECT_EQ(events[0].error_code, MOAT_ERR_INTERNAL);
  EXPECT_FALSE(events[0].error_message.empty());
}

TEST_F(EchoFaults, FailMidStreamAfterTheConfiguredDeltas) {
  for (uint32_t after : {0u, 2u, 3u}) {
    moat_backend* b =
        create(R"({"fault":"fail_mid_stream","fault_after_deltas":)" + std::to_string(after) + "}");
    ASSERT_NE(b, nullptr);
    request_builder req(MOAT_REQUEST_CHAT, 2);
    req.message("user", "one two three four five");
    recorder rec;
    ASSERT_EQ(submit(b, req, rec), MOAT_OK);
    ASSERT_TRUE(rec.wait_terminal());
    const auto events = rec.events();
    EXPECT_EQ(count_kind(events, MOAT_EVENT_DELTA), after);
    EXPECT_EQ(count_kind(events, MOAT_EVENT_FINISH), 0u);
    EXPECT_EQ(events.back().kind, MOAT_EVENT_ERROR);
    EXPECT_EQ(events.back().error_code, MOAT_ERR_INTERNAL);
  }
  // The default is two deltas.
  moat_backend* b = create(R"({"fault":"fail_mid_stream"})");
  request_builder req(MOAT_REQUEST_COMPLETION, 3);
  req.prompt("one two three four five");
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  EXPECT_EQ(count_kind(rec.events(), MOAT_EVENT_DELTA), 2u);
}

TEST_F(EchoFaults, HangSendsNothingUntilCancelled) {
  moat_backend* b = create(R"({"fault":"hang"})");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_CHAT, 4);
  req.message("user", "anything");
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  EXPECT_FALSE(rec.wait_terminal(100ms));
  EXPECT_TRUE(rec.events().empty());
  moat_stats stats{};
  stats.struct_size = sizeof stats;
  ASSERT_EQ(api_->stats(b, &stats), MOAT_OK);
  EXPECT_EQ(stats.requests_running, 1u);
  api_->cancel(b, 4);
  ASSERT_TRUE(rec.wait_terminal(2s));
  ASSERT_EQ(rec.events().size(), 1u);
  EXPECT_EQ(rec.terminal().kind, MOAT_EVENT_ERROR);
  EXPECT_EQ(rec.terminal().error_code, MOAT_ERR_CANCELLED);
  api_->cancel(b, 4);  // a finished id is ignored
  api_->cancel(b, 12345);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(rec.terminals(), 1);
}

TEST_F(EchoFaults, CancelMidStreamStopsWithinOneStep) {
  moat_backend* b = create(R"({"delay_ms":200})");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_CHAT, 5);
  req.message("user", "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10");
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_events(1));  // the first delta comes at once, the next after 200 ms
  const auto cancelled_at = std::chrono::steady_clock::now();
  api_->cancel(b, 5);
  ASSERT_TRUE(rec.wait_terminal(2s));
  // The cancel is honoured at once rather than after the pending delay.
  EXPECT_LT(std::chrono::steady_clock::now() - cancelled_at, 150ms);
  const auto events = rec.events();
  EXPECT_LT(count_kind(events, MOAT_EVENT_DELTA), 10u);
  EXPECT_EQ(events.back().error_code, MOAT_ERR_CANCELLED);
}

TEST_F(EchoFaults, DestroyEndsEverythingInFlight) {
  moat_backend* hang = create(R"({"fault":"hang"})");
  moat_backend* slow = create(R"({"delay_ms":1000})");
  ASSERT_NE(hang, nullptr);
  ASSERT_NE(slow, nullptr);
  std::vector<std::unique_ptr<recorder>> recs;
  std::vector<std::unique_ptr<request_builder>> reqs;
  for (uint64_t id = 1; id <= 4; ++id) {
    recs.push_back(std::make_unique<recorder>());
    reqs.push_back(std::make_unique<request_builder>(MOAT_REQUEST_CHAT, id));
    reqs.back()->message("user", "a b c d e f");
    ASSERT_EQ(submit(id <= 2 ? hang : slow, *reqs.back(), *recs.back()), MOAT_OK);
  }
  destroy(hang);
  destroy(slow);
  // destroy() returned: every request has had its one terminal event.
  for (auto& rec : recs) {
    ASSERT_EQ(rec->terminals(), 1);
    EXPECT_EQ(rec->terminal().kind, MOAT_EVENT_ERROR);
    EXPECT_EQ(rec->terminal().error_code, MOAT_ERR_UNAVAILABLE);
  }
}

TEST_F(EchoFaults, DuplicateIdInFlightIsRefused) {
  moat_backend* b = create(R"({"fault":"hang"})");
  request_builder req(MOAT_REQUEST_CHAT, 77);
  req.message("user", "x");
  recorder first;
  recorder second;
  ASSERT_EQ(submit(b, req, first), MOAT_OK);
  moat_error err{};
  EXPECT_EQ(submit(b, req, second, &err), MOAT_ERR_INVALID_ARGUMENT);
  api_->cancel(b, 77);
  ASSERT_TRUE(first.wait_terminal());
  EXPECT_TRUE(second.events().empty());
}

// A submit wakes a worker only when none is awake or already told to wake. A notify that
// reached no waiter (submits racing the workers' start, many times over with fresh backends)
// must not leave later submits waiting for a wake that never comes.
TEST_F(EchoFaults, SubmitsRightAfterCreateAndOneByOneAreAllServed) {
  for (int round = 0; round < 20; ++round) {
    moat_backend* b = create("{}");
    ASSERT_NE(b, nullptr);
    for (uint64_t id = 1; id <= 5; ++id) {
      request_builder req(MOAT_REQUEST_CHAT, id);
      req.message("user", "x y");
      recorder rec;
      ASSERT_EQ(submit(b, req, rec), MOAT_OK);
      ASSERT_TRUE(rec.wait_terminal(2s)) << "round " << round << ", request " << id;
      EXPECT_EQ(count_kind(rec.events(), MOAT_EVENT_DONE), 1u);
    }
    destroy(b);
  }
}

TEST_F(EchoFaults, ManyConcurrentDelayedStreamsFewThreads) {
  moat_backend* b = create(R"({"delay_ms":5,"workers":2})");
  ASSERT_NE(b, nullptr);
  constexpr int streams = 300;
  std::vector<std::unique_ptr<recorder>> recs;
  std::vector<std::unique_ptr<request_builder>> reqs;
  for (int i = 0; i < streams; ++i) {
    recs.push_back(std::make_unique<recorder>());
    reqs.push_back(std::make_unique<request_builder>(MOAT_REQUEST_CHAT, 1000 + i));
    reqs.back()->message("user", "r" + std::to_string(i) + " two three four");
    ASSERT_EQ(submit(b, *reqs.back(), *recs.back()), MOAT_OK);
  }
  // 4 deltas 5 ms apart: with a timer queue the whole batch takes tens of milliseconds.
  for (int i = 0; i < streams; ++i) {
    ASSERT_TRUE(recs[i]->wait_terminal(20s)) << i;
    EXPECT_EQ(recs[i]->terminal().kind, MOAT_EVENT_DONE);
    EXPECT_EQ(recs[i]->text_of(0), "r" + std::to_string(i) + " two three four");
  }
  EXPECT_EQ(running_after_settling(b), 0u);
}

TEST_F(EchoFaults, CancelFromInsideTheCallbackIsSafe) {
  moat_backend* b = create(R"({"delay_ms":20})");
  ASSERT_NE(b, nullptr);
  struct ctx {
    const moat_backend_api* api;
    moat_backend* backend;
    recorder rec;
  } c{api_, b, {}};
  c.rec.submitting_thread = std::this_thread::get_id();
  auto on_event = [](void* user, const moat_event* event) {
    auto* self = static_cast<ctx*>(user);
    if (event->kind == MOAT_EVENT_DELTA) self->api->cancel(self->backend, 9);
    recorder::on_event(&self->rec, event);
  };
  request_builder req(MOAT_REQUEST_CHAT, 9);
  req.message("user", "a b c d e f g h");
  moat_error err{};
  ASSERT_EQ(api_->submit(b, req.get(), on_event, &c, &err), MOAT_OK);
  ASSERT_TRUE(c.rec.wait_terminal(2s));
  EXPECT_EQ(count_kind(c.rec.events(), MOAT_EVENT_DELTA), 1u);
  EXPECT_EQ(c.rec.terminal().error_code, MOAT_ERR_CANCELLED);
}

}  // namespace
}  // namespace moat::echo::testing

// The echo scheduler's lock-free fast path (delay_ms 0): submits racing from several threads
// each get exactly one terminal event with their own answer, and destroy right after a burst
// still ends every accepted request exactly once.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "echo_harness.h"

namespace moat::echo::testing {
namespace {

using namespace std::chrono_literals;
using EchoScheduler = echo_fixture;

TEST_F(EchoScheduler, FastSubmitsFromManyThreadsEachGetTheirOwnAnswerOnce) {
  moat_backend* b = create(R"({"workers":2})");
  ASSERT_NE(b, nullptr);
  constexpr int threads = 4;
  constexpr int per_thread = 300;
  std::vector<std::unique_ptr<recorder>> recs;
  std::vector<std::unique_ptr<request_builder>> reqs;
  // Built by appending: GCC 12 misreads a chain of string operator+ here (-Wrestrict).
  auto text_for = [](int i) {
    return std::string("r").append(std::to_string(i)).append(" and two more");
  };
  for (int i = 0; i < threads * per_thread; ++i) {
    recs.push_back(std::make_unique<recorder>());
    reqs.push_back(std::make_unique<request_builder>(MOAT_REQUEST_CHAT, 1 + i));
    reqs.back()->message("user", text_for(i));
  }
  std::vector<std::thread> submitters;
  std::atomic<int> refused{0};
  for (int t = 0; t < threads; ++t) {
    submitters.emplace_back([&, t] {
      for (int k = 0; k < per_thread; ++k) {
        const int i = t * per_thread + k;
        if (submit(b, *reqs[i], *recs[i]) != MOAT_OK) refused.fetch_add(1);
      }
    });
  }
  for (auto& s : submitters) s.join();
  EXPECT_EQ(refused.load(), 0);
  for (int i = 0; i < threads * per_thread; ++i) {
    ASSERT_TRUE(recs[i]->wait_terminal(10s)) << i;
    EXPECT_EQ(recs[i]->terminals(), 1) << i;
    EXPECT_EQ(recs[i]->terminal().kind, MOAT_EVENT_DONE) << i;
    EXPECT_EQ(recs[i]->text_of(0), text_for(i)) << i;
  }
  EXPECT_EQ(running_after_settling(b), 0u);
}

TEST_F(EchoScheduler, DestroyRightAfterABurstEndsEveryRequestOnce) {
  for (int round = 0; round < 10; ++round) {
    moat_backend* b = create(R"({"workers":1})");
    ASSERT_NE(b, nullptr);
    constexpr int requests = 200;
    std::vector<std::unique_ptr<recorder>> recs;
    std::vector<std::unique_ptr<request_builder>> reqs;
    for (int i = 0; i < requests; ++i) {
      recs.push_back(std::make_unique<recorder>());
      reqs.push_back(std::make_unique<request_builder>(MOAT_REQUEST_CHAT, 1 + i));
      reqs.back()->message("user", "a b c d e f g h");
      ASSERT_EQ(submit(b, *reqs.back(), *recs.back()), MOAT_OK);
    }
    destroy(b);
    // destroy() returned: every accepted request has had exactly one terminal event, the
    // answer when a worker got to it first, else ERROR(MOAT_ERR_UNAVAILABLE).
    for (int i = 0; i < requests; ++i) {
      ASSERT_EQ(recs[i]->terminals(), 1) << "round " << round << ", request " << i;
      const auto& t = recs[i]->terminal();
      if (t.kind == MOAT_EVENT_ERROR) {
        EXPECT_EQ(t.error_code, MOAT_ERR_UNAVAILABLE);
      } else {
        EXPECT_EQ(t.kind, MOAT_EVENT_DONE);
        EXPECT_EQ(recs[i]->text_of(0), "a b c d e f g h");
      }
    }
  }
}

}  // namespace
}  // namespace moat::echo::testing

// What submit() decides at once and what it must copy: the context limit is still refused
// synchronously (words counted only when the bytes could exceed it), the request's memory may be
// gone as soon as submit returns, and a worker's reused plan buffers never leak one answer into
// the next.
#include <memory>
#include <string>
#include <vector>

#include "echo_harness.h"

namespace moat::echo::testing {
namespace {

using EchoSubmit = echo_fixture;

moat_finish_reason of_finish(recorder& rec) {
  for (const auto& e : rec.events()) {
    if (e.kind == MOAT_EVENT_FINISH) return e.finish;
  }
  return MOAT_FINISH_NONE;
}

TEST_F(EchoSubmit, ContextLimitCountsWordsNotBytes) {
  moat_backend* b = create(R"({"max_context":4})");
  ASSERT_NE(b, nullptr);
  // 19 bytes but 3 words: within the context, which leaves the answer one word.
  request_builder fits(MOAT_REQUEST_CHAT, 1);
  fits.message("system", "aaaaaaa").message("user", "bbbb    cccc");
  recorder rec;
  ASSERT_EQ(submit(b, fits, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  EXPECT_EQ(rec.terminal().kind, MOAT_EVENT_DONE);
  EXPECT_EQ(rec.terminal().usage.prompt_tokens, 3u);
  EXPECT_EQ(rec.text_of(0), "bbbb    ");
  EXPECT_EQ(of_finish(rec), MOAT_FINISH_LENGTH);

  request_builder over(MOAT_REQUEST_COMPLETION, 2);
  over.prompt("a").prompt("v w x y z");
  recorder refused;
  moat_error err{};
  EXPECT_EQ(submit(b, over, refused, &err), MOAT_ERR_CONTEXT_LENGTH);
  EXPECT_NE(std::string(err.message).find("your prompt has 5 tokens"), std::string::npos)
      << err.message;

  request_builder tokens(MOAT_REQUEST_COMPLETION, 3);
  tokens.token_prompt({1, 2, 3, 4, 5});
  err = moat_error{};
  EXPECT_EQ(submit(b, tokens, refused, &err), MOAT_ERR_CONTEXT_LENGTH);
  EXPECT_NE(std::string(err.message).find("your prompt has 5 tokens"), std::string::npos)
      << err.message;
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(refused.events().empty());
}

TEST_F(EchoSubmit, ExtremeTokenIdsFitTheCopy) {
  moat_backend* b = create("{}");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_COMPLETION, 4);
  req.token_prompt({INT32_MIN, INT32_MAX, -1, 0});
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  EXPECT_EQ(rec.text_of(0), "-2147483648 2147483647 -1 0");
  EXPECT_EQ(rec.terminal().usage.prompt_tokens, 4u);
}

// Usage when the answer is the prompt itself: its words counted in the planning pass or on
// their own (a stop cut it, max_tokens or the context left bind), always the same numbers.
TEST_F(EchoSubmit, UsageCountsThePromptOnceWhateverCutsTheAnswer) {
  struct want {
    const char* options;
    const char* stop;
    int32_t max_tokens;
    std::string text;
    uint64_t prompt, completion;
  };
  const std::vector<want> cases = {
      {"{}", nullptr, -1, "one two  three ", 2 + 3, 3},                    // fits: one pass
      {"{}", "two", -1, "one two  three ", 2 + 3, 1},                      // stop: answer "one "
      {"{}", nullptr, 2, "one two  three ", 2 + 3, 2},                     // max_tokens binds
      {R"({"max_context":7})", nullptr, -1, "one two  three ", 2 + 3, 2},  // context left: 2
      {R"({"max_context":30})", nullptr, -1, " \t ", 2, 0},                // whitespace only
  };
  uint64_t id = 500;
  for (const want& w : cases) {
    moat_backend* b = create(w.options);
    ASSERT_NE(b, nullptr);
    for (const moat_request_kind kind : {MOAT_REQUEST_CHAT, MOAT_REQUEST_COMPLETION}) {
      request_builder req(kind, id++);
      if (kind == MOAT_REQUEST_CHAT) {
        req.message("system", "be kind").message("user", w.text);
      } else {
        req.prompt("be kind").prompt(w.text);  // two prompts: each is its own answer
      }
      if (w.stop != nullptr) req.stop(w.stop);
      req.request.sampling.max_tokens = w.max_tokens;
      recorder rec;
      ASSERT_EQ(submit(b, req, rec), MOAT_OK);
      ASSERT_TRUE(rec.wait_terminal());
      ASSERT_EQ(rec.terminal().kind, MOAT_EVENT_DONE);
      EXPECT_EQ(rec.terminal().usage.prompt_tokens, w.prompt) << w.text << " kind " << kind;
      if (kind == MOAT_REQUEST_CHAT) {
        EXPECT_EQ(rec.terminal().usage.completion_tokens, w.completion) << w.text;
      }
    }
  }
}

// The request (messages, prompts, stops, body) is freed right after submit returns, before a
// worker has planned it: the answer must come from the job's own copy (ASan sees any read of
// the freed request).
TEST_F(EchoSubmit, TheRequestMayBeFreedWhenSubmitReturns) {
  moat_backend* b = create(R"({"workers":1})");
  moat_backend* body = create(R"({"answer":"body"})");
  ASSERT_NE(b, nullptr);
  ASSERT_NE(body, nullptr);
  constexpr int requests = 50;
  std::vector<std::unique_ptr<recorder>> recs;
  for (int i = 0; i < requests; ++i) {
    recs.push_back(std::make_unique<recorder>());
    auto req = std::make_unique<request_builder>(MOAT_REQUEST_CHAT, 10 + i);
    req->message("system", "be brief")
        .message("user", "first question")
        .message("assistant", "first answer")
        .message("user", "word" + std::to_string(i) + " then STOP and more");
    req->stop("STOP");
    ASSERT_EQ(submit(b, *req, *recs.back()), MOAT_OK);
    for (std::string& s : req->strings) s.assign(s.size(), '#');  // scribble, then free
    req.reset();
  }
  for (int i = 0; i < requests; ++i) {
    ASSERT_TRUE(recs[i]->wait_terminal());
    EXPECT_EQ(recs[i]->text_of(0), "word" + std::to_string(i) + " then ") << i;
    EXPECT_EQ(recs[i]->terminal().usage.prompt_tokens, 11u) << i;
    EXPECT_EQ(recs[i]->terminal().usage.completion_tokens, 2u) << i;
  }

  auto req = std::make_unique<request_builder>(MOAT_REQUEST_COMPLETION, 99);
  req->prompt("ignored");
  const std::string json = R"({"model":"echo","prompt":"ignored"})";
  req->request.body_json = req->keep(json);
  recorder rec;
  ASSERT_EQ(submit(body, *req, rec), MOAT_OK);
  for (std::string& s : req->strings) s.assign(s.size(), '#');
  req.reset();
  ASSERT_TRUE(rec.wait_terminal());
  EXPECT_EQ(rec.text_of(0), json);
}

// One worker runs every job with the same (lent) plan buffers: long, short, n > 1, logprobs,
// chunked and one past the size a worker keeps, in turn; each answer is its own.
TEST_F(EchoSubmit, ReusedPlanBuffersNeverMixAnswers) {
  moat_backend* b = create(R"({"workers":1})");
  ASSERT_NE(b, nullptr);
  std::string huge;
  for (int i = 0; i < 4000; ++i) huge += "wordwordwordwordword" + std::to_string(i % 97) + "  ";
  const std::vector<std::string> texts = {"one two three four five six seven eight nine ten",
                                          "short",
                                          huge,
                                          "  lead and trail  ",
                                          "a",
                                          "x y"};
  for (int round = 0; round < 3; ++round) {
    for (size_t t = 0; t < texts.size(); ++t) {
      request_builder req(MOAT_REQUEST_COMPLETION, 100 + round * 10 + t);
      req.prompt(texts[t]).prompt(texts[(t + 1) % texts.size()]);
      req.request.sampling.n = 2;
      req.request.sampling.logprobs = round == 1 ? 1 : -1;
      recorder rec;
      ASSERT_EQ(submit(b, req, rec), MOAT_OK);
      ASSERT_TRUE(rec.wait_terminal());
      ASSERT_EQ(rec.terminal().kind, MOAT_EVENT_DONE);
      for (uint32_t c = 0; c < 4; ++c) {
        // Not EXPECT_EQ: a failure would print the 90 KB text.
        EXPECT_TRUE(rec.text_of(c) == texts[(t + c / 2) % texts.size()])
            << "round " << round << ", text " << t << ", choice " << c;
      }
      size_t deltas = 0;
      size_t tokens = 0;
      for (const auto& e : rec.events()) {
        if (e.kind != MOAT_EVENT_DELTA) continue;
        ++deltas;
        tokens += e.tokens.size();
        if (round == 1) {
          EXPECT_EQ(e.chosen.size(), e.tokens.size());
        }
      }
      EXPECT_EQ(tokens, deltas);  // one word (a piece) per delta, one token each
    }
  }
}

}  // namespace
}  // namespace moat::echo::testing

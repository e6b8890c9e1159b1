// Whole answers: a request that is not streamed (moat_request::stream == 0), on a backend with
// no delay_ms and no fault, gets one delta per choice carrying all the choice's tokens (and
// logprobs), and the same answer the streamed request gets delta by delta: text, token ids,
// logprobs, finish reason, usage. Delayed and faulty backends keep their per-word deltas.
#include <cstddef>
#include <functional>
#include <map>
#include <utility>

#include "echo_harness.h"

namespace moat::echo::testing {
namespace {

// One choice's answer, joined from its deltas.
struct joined_choice {
  size_t deltas = 0;
  std::string text;
  std::vector<int32_t> tokens;
  std::vector<std::string> logprob_texts;
  std::vector<int32_t> logprob_tokens;
  std::vector<size_t> top_counts;
  moat_finish_reason finish = MOAT_FINISH_NONE;
  bool finished_after_deltas = true;  // no delta of this choice after its FINISH
};

struct joined_answer {
  std::map<uint32_t, joined_choice> choices;
  moat_event_kind terminal = MOAT_EVENT_ERROR;
  moat_usage usage{};
};

joined_answer join(const std::vector<recorded_event>& events) {
  joined_answer out;
  for (const auto& e : events) {
    joined_choice& c = out.choices[e.index];
    switch (e.kind) {
      case MOAT_EVENT_DELTA:
        ++c.deltas;
        c.finished_after_deltas = c.finished_after_deltas && c.finish == MOAT_FINISH_NONE;
        c.text += e.text;
        c.tokens.insert(c.tokens.end(), e.tokens.begin(), e.tokens.end());
        c.logprob_texts.insert(c.logprob_texts.end(), e.chosen_text.begin(), e.chosen_text.end());
        for (const auto& t : e.chosen) c.logprob_tokens.push_back(t.token);
        c.top_counts.insert(c.top_counts.end(), e.top_counts.begin(), e.top_counts.end());
        break;
      case MOAT_EVENT_FINISH:
        c.finish = e.finish;
        break;
      default:
        out.choices.erase(e.index);  // DONE/ERROR carry index 0 but belong to no choice
        out.terminal = e.kind;
        out.usage = e.usage;
        break;
    }
  }
  return out;
}

class EchoWhole : public echo_fixture {
 protected:
  // Runs the request `fill` makes twice on one backend (so both see the same vocabulary),
  // streamed and not, and compares the answers choice by choice.
  void compare_with_streamed(moat_backend* b, const std::string& what,
                             const std::function<void(request_builder&)>& fill) {
    request_builder streamed(MOAT_REQUEST_CHAT, next_id_++);
    fill(streamed);
    streamed.request.stream = 1;
    request_builder whole(MOAT_REQUEST_CHAT, next_id_++);
    fill(whole);
    whole.request.stream = 0;
    recorder streamed_rec;
    recorder whole_rec;
    ASSERT_EQ(submit(b, streamed, streamed_rec), MOAT_OK) << what;
    ASSERT_TRUE(streamed_rec.wait_terminal()) << what;
    ASSERT_EQ(submit(b, whole, whole_rec), MOAT_OK) << what;
    ASSERT_TRUE(whole_rec.wait_terminal()) << what;

    const joined_answer s = join(streamed_rec.events());
    const joined_answer w = join(whole_rec.events());
    EXPECT_EQ(w.terminal, MOAT_EVENT_DONE) << what;
    EXPECT_EQ(s.terminal, MOAT_EVENT_DONE) << what;
    EXPECT_EQ(w.usage.prompt_tokens, s.usage.prompt_tokens) << what;
    EXPECT_EQ(w.usage.completion_tokens, s.usage.completion_tokens) << what;
    ASSERT_EQ(w.choices.size(), s.choices.size()) << what;
    for (const auto& [index, sc] : s.choices) {
      ASSERT_EQ(w.choices.count(index), 1u) << what;
      const joined_choice& wc = w.choices.at(index);
      const std::string where = what + ", choice " + std::to_string(index);
      EXPECT_EQ(wc.deltas, sc.text.empty() ? 0u : 1u) << where;  // one delta; none when empty
      EXPECT_EQ(wc.text, sc.text) << where;
      EXPECT_EQ(wc.tokens, sc.tokens) << where;
      EXPECT_EQ(wc.logprob_texts, sc.logprob_texts) << where;
      EXPECT_EQ(wc.logprob_tokens, sc.logprob_tokens) << where;
      EXPECT_EQ(wc.top_counts, sc.top_counts) << where;
      EXPECT_EQ(wc.finish, sc.finish) << where;
      EXPECT_NE(wc.finish, MOAT_FINISH_NONE) << where;
      EXPECT_TRUE(wc.finished_after_deltas) << where;
    }
  }

  uint64_t next_id_ = 1;
};

TEST_F(EchoWhole, OneDeltaPerChoiceWithTheStreamedAnswersTokensAndLogprobs) {
  for (const char* options : {"{}", R"({"chunk_chars":3})"}) {
    moat_backend* b = create(options);
    ASSERT_NE(b, nullptr);
    auto run = [&](const std::string& what, const std::function<void(request_builder&)>& fill) {
      compare_with_streamed(b, std::string(options) + " " + what, fill);
    };
    const std::vector<std::string> texts = {
        "hello from the gateway benchmark, twelve words in all for every request",
        "\t to be  or not\nto be ",
        "  \n ",
        "",
        "h\xC3\xA9llo w\xC3\xB6rld \xE2\x9C\x93\xF0\x9F\x98\x80!",
        "exactly8 exactly8",
        "one"};
    for (size_t t = 0; t < texts.size(); ++t) {
      run("chat text " + std::to_string(t),
          [&](request_builder& r) { r.message("system", "be brief").message("user", texts[t]); });
      run("chat logprobs 2, text " + std::to_string(t), [&](request_builder& r) {
        r.message("user", texts[t]);
        r.request.sampling.logprobs = 2;
      });
    }
    run("chat logprobs 0", [](request_builder& r) {
      r.message("user", "x y z");
      r.request.sampling.logprobs = 0;
    });
    run("max_tokens", [](request_builder& r) {
      r.message("user", "one two three four");
      r.request.sampling.max_tokens = 2;
    });
    run("stop", [](request_builder& r) { r.message("user", "alpha beta END gamma").stop("END"); });
    run("no user message", [](request_builder& r) { r.message("system", "only a system prompt"); });
    run("completion, two prompts times n 2, echo, logprobs", [](request_builder& r) {
      r.request.kind = MOAT_REQUEST_COMPLETION;
      r.prompt("red green").prompt("  blue ");
      r.request.sampling.n = 2;
      r.request.echo = 1;
      r.request.sampling.logprobs = 1;
    });
    run("completion, token prompt", [](request_builder& r) {
      r.request.kind = MOAT_REQUEST_COMPLETION;
      r.token_prompt({7, -3, 2147483647});
    });
  }
}

// delay_ms keeps its pacing and fail_mid_stream its count of deltas for a whole answer too; an
// older host whose request ends before `stream` gets per-word deltas.
TEST_F(EchoWhole, DelayFaultsAndOlderHostsKeepPerWordDeltas) {
  auto deltas_of = [&](moat_backend* b, request_builder& req) {
    recorder rec;
    EXPECT_EQ(submit(b, req, rec), MOAT_OK);
    EXPECT_TRUE(rec.wait_terminal());
    size_t deltas = 0;
    for (const auto& e : rec.events()) deltas += e.kind == MOAT_EVENT_DELTA ? 1 : 0;
    return std::make_pair(deltas, rec.terminal().kind);
  };
  moat_backend* slow = create(R"({"delay_ms":1})");
  ASSERT_NE(slow, nullptr);
  request_builder delayed(MOAT_REQUEST_CHAT, 1);
  delayed.message("user", "a b c");
  delayed.request.stream = 0;
  EXPECT_EQ(deltas_of(slow, delayed), std::make_pair(size_t{3}, MOAT_EVENT_DONE));

  moat_backend* faulty = create(R"({"fault":"fail_mid_stream","fault_after_deltas":2})");
  ASSERT_NE(faulty, nullptr);
  request_builder failing(MOAT_REQUEST_CHAT, 2);
  failing.message("user", "a b c d e");
  failing.request.stream = 0;
  EXPECT_EQ(deltas_of(faulty, failing), std::make_pair(size_t{2}, MOAT_EVENT_ERROR));

  moat_backend* fast = create("{}");
  ASSERT_NE(fast, nullptr);
  request_builder whole(MOAT_REQUEST_CHAT, 3);
  whole.message("user", "a b c d e");
  whole.request.stream = 0;
  EXPECT_EQ(deltas_of(fast, whole), std::make_pair(size_t{1}, MOAT_EVENT_DONE));
  request_builder older(MOAT_REQUEST_CHAT, 4);
  older.message("user", "a b c d e");
  older.request.stream = 0;
  older.request.struct_size = offsetof(moat_request, stream);  // ends before `stream`
  EXPECT_EQ(deltas_of(fast, older), std::make_pair(size_t{5}, MOAT_EVENT_DONE));
}

}  // namespace
}  // namespace moat::echo::testing

// Robustness: truncated and mutated bodies never crash a parser and always yield either a
// request or a 400 with a message (never a 500, never an exception).
#include <gtest/gtest.h>

#include <random>

#include "openai/protocol.h"

namespace moat::openai {
namespace {

const std::string chat_sample =
    R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":)"
    R"([{"type":"text","text":"h\u00e9llo"}],"name":"n"},{"role":"assistant","content":null,)"
    R"("tool_calls":[{"id":"1"}]},{"role":"tool","tool_call_id":"1","content":"r"}],)"
    R"("temperature":0.5,"stop":["a","b"],"logit_bias":{"5":1},"n":2,"seed":-1,)"
    R"("logprobs":true,"top_logprobs":3,"stream":true,"stream_options":{"include_usage":true}})";
const std::string completion_sample =
    R"({"model":"m","prompt":[[1,2],[3]],"max_tokens":5,"logprobs":2,"echo":true,"suffix":null})";
const std::string embedding_sample =
    R"({"model":"m","input":["a","b"],"encoding_format":"base64","dimensions":8})";

template <class Result>
void expect_value_or_400(const Result& result, const std::string& body) {
  if (const auto* error = std::get_if<api_error>(&result)) {
    EXPECT_EQ(error->status, 400) << body;
    EXPECT_FALSE(error->message.empty()) << body;
  }
}

void check_all(const std::string& body) {
  expect_value_or_400(parse_chat_request(body), body);
  expect_value_or_400(parse_completion_request(body), body);
  expect_value_or_400(parse_embedding_request(body), body);
  expect_value_or_400(parse_tokenize_request(body), body);
  expect_value_or_400(parse_detokenize_request(body), body);
}

TEST(ParseRobustness, SamplesParse) {
  EXPECT_TRUE(std::holds_alternative<chat_request>(parse_chat_request(chat_sample)));
  EXPECT_TRUE(std::holds_alternative<completion_request>(parse_completion_request(completion_sample)));
  EXPECT_TRUE(std::holds_alternative<embedding_request>(parse_embedding_request(embedding_sample)));
}

TEST(ParseRobustness, EveryTruncation) {
  for (const std::string* sample : {&chat_sample, &completion_sample, &embedding_sample}) {
    for (size_t len = 0; len < sample->size(); ++len) check_all(sample->substr(0, len));
  }
}

TEST(ParseRobustness, RandomMutations) {
  std::mt19937 rng(12345);  // fixed seed: a failure reproduces
  const char alphabet[] = "{}[]\",:0123456789-.eE truefalsnul\\u\xC3\xA9\xFF\x00";
  for (const std::string* sample : {&chat_sample, &completion_sample, &embedding_sample}) {
    for (int round = 0; round < 3000; ++round) {
      std::string body = *sample;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        const size_t at = rng() % body.size();
        const char c = alphabet[rng() % (sizeof alphabet - 1)];
        // Rebuilt with append() and push_back(): GCC 12 warns falsely (-Wrestrict) on insert().
        std::string next;
        next.reserve(body.size() + 1);
        next.append(body, 0, at);
        switch (rng() % 3) {
          case 0: next.push_back(c); next.append(body, at + 1, std::string::npos); break;
          case 1: next.push_back(c); next.append(body, at, std::string::npos); break;
          default: next.append(body, at + 1, std::string::npos); break;
        }
        body = std::move(next);
        if (body.empty()) body.push_back('{');
      }
      check_all(body);
    }
  }
}

}  // namespace
}  // namespace moat::openai

// /v1/completions, /v1/embeddings, /tokenize and /detokenize request parsing.
#include <gtest/gtest.h>

#include "expect_error.h"

namespace moat::openai {
namespace {

using testing::expect_invalid;
using testing::expect_ok;

const completion_request& ok(const completion_parse_result& r) {
  return expect_ok<completion_request>(r);
}
const embedding_request& ok(const embedding_parse_result& r) {
  return expect_ok<embedding_request>(r);
}

std::string completion_body(const std::string& extra) {
  return R"({"model":"m","prompt":"hello")" + (extra.empty() ? std::string() : "," + extra) + "}";
}

TEST(ParseCompletion, EveryPromptForm) {
  {
    const auto result = parse_completion_request(R"({"model":"m","prompt":"a b"})");
    const auto& r = ok(result);
    ASSERT_EQ(r.prompts.size(), 1u);
    EXPECT_FALSE(r.prompts[0].is_tokens);
    EXPECT_EQ(r.prompts[0].text, "a b");
  }
  {
    const auto result = parse_completion_request(R"({"model":"m","prompt":["x","","z"]})");
    const auto& r = ok(result);
    ASSERT_EQ(r.prompts.size(), 3u);
    EXPECT_EQ(r.prompts[1].text, "");
    EXPECT_EQ(r.prompts[2].text, "z");
  }
  {
    const auto result = parse_completion_request(R"({"model":"m","prompt":[1,2,2147483647]})");
    const auto& r = ok(result);
    ASSERT_EQ(r.prompts.size(), 1u);
    EXPECT_TRUE(r.prompts[0].is_tokens);
    EXPECT_EQ(r.prompts[0].tokens, (std::vector<int32_t>{1, 2, 2147483647}));
  }
  {
    const auto result = parse_completion_request(R"({"model":"m","prompt":[[1],[2,3]]})");
    const auto& r = ok(result);
    ASSERT_EQ(r.prompts.size(), 2u);
    EXPECT_TRUE(r.prompts[1].is_tokens);
    EXPECT_EQ(r.prompts[1].tokens, (std::vector<int32_t>{2, 3}));
  }
}

TEST(ParseCompletion, DefaultsAndFields) {
  {
    const auto result = parse_completion_request(completion_body(""));
    const auto& r = ok(result);
    EXPECT_EQ(r.sampling.max_tokens, 16);  // OpenAI's default for completions
    EXPECT_FALSE(r.sampling.logprobs);
    EXPECT_FALSE(r.echo);
  }
  const auto result = parse_completion_request(completion_body(
      R"("max_tokens":0,"logprobs":3,"echo":true,"suffix":"","n":2,"best_of":2,)"
      R"("temperature":0,"stop":["\n"],"stream":true,"stream_options":{"include_usage":false},)"
      R"("seed":18446744073709551615,"user":"x","unknown":{"deep":[null]})"));
  const auto& r = ok(result);
  EXPECT_EQ(r.sampling.max_tokens, 0);
  EXPECT_TRUE(r.sampling.logprobs);
  EXPECT_EQ(r.sampling.top_logprobs, 3);
  EXPECT_TRUE(r.echo);
  EXPECT_EQ(r.sampling.n, 2);
  EXPECT_DOUBLE_EQ(r.sampling.temperature, 0.0);
  EXPECT_EQ(r.sampling.stop, std::vector<std::string>{"\n"});
  EXPECT_TRUE(r.stream);
  EXPECT_EQ(r.sampling.seed, UINT64_MAX);
}

TEST(ParseCompletion, CacheSaltIsNotedOnlyAtTheTopLevel) {
  EXPECT_FALSE(ok(parse_completion_request(completion_body(""))).cache_salt);
  EXPECT_TRUE(ok(parse_completion_request(completion_body(R"("cache_salt":"s")"))).cache_salt);
  EXPECT_FALSE(
      ok(parse_completion_request(R"({"model":"m","prompt":"\"cache_salt\":\"s\""})")).cache_salt);
}

TEST(ParseCompletion, Errors) {
  expect_invalid(parse_completion_request(R"({"model":"m"})"), "prompt");
  expect_invalid(parse_completion_request(R"({"model":"m","prompt":null})"), "prompt");
  expect_invalid(parse_completion_request(R"({"model":"m","prompt":[]})"), "prompt");
  expect_invalid(parse_completion_request(R"({"model":"m","prompt":5})"), "prompt");
  expect_invalid(parse_completion_request(R"({"model":"m","prompt":["a",1]})"), "prompt[1]");
  expect_invalid(parse_completion_request(R"({"model":"m","prompt":[1,"a"]})"), "prompt[1]");
  expect_invalid(parse_completion_request(R"({"model":"m","prompt":[1,-2]})"), "prompt[1]");
  expect_invalid(parse_completion_request(R"({"model":"m","prompt":[1,2147483648]})"), "prompt[1]");
  expect_invalid(parse_completion_request(R"({"model":"m","prompt":[[1],[]]})"), "prompt[1]");
  expect_invalid(parse_completion_request(R"({"model":"m","prompt":[[1],["a"]]})"), "prompt[1][0]");
  expect_invalid(parse_completion_request(R"({"model":"m","prompt":[true]})"), "prompt[0]");
  expect_invalid(parse_completion_request(completion_body(R"("logprobs":6)")), "logprobs");
  expect_invalid(parse_completion_request(completion_body(R"("logprobs":true)")), "logprobs");
  expect_invalid(parse_completion_request(completion_body(R"("max_tokens":-1)")), "max_tokens");
  expect_invalid(parse_completion_request(completion_body(R"("echo":"yes")")), "echo");
  expect_invalid(parse_completion_request(completion_body(R"("suffix":"tail")")), "suffix");
  expect_invalid(parse_completion_request(completion_body(R"("n":2,"best_of":1)")), "best_of");
  expect_invalid(parse_completion_request(completion_body(R"("best_of":3)")), "best_of");
  expect_invalid(parse_completion_request(completion_body(R"("best_of":21)")), "best_of");
  expect_invalid(parse_completion_request(completion_body(R"("stream_options":{})")),
                 "stream_options");
  expect_invalid(parse_completion_request(completion_body(R"("temperature":3)")), "temperature");
}

TEST(ParseEmbedding, EveryInputForm) {
  {
    const auto result = parse_embedding_request(R"({"model":"e","input":"text"})");
    const auto& r = ok(result);
    ASSERT_EQ(r.inputs.size(), 1u);
    EXPECT_EQ(r.inputs[0].text, "text");
    EXPECT_EQ(r.encoding_format, "float");
    EXPECT_FALSE(r.dimensions.has_value());
  }
  {
    const auto result = parse_embedding_request(
        R"({"model":"e","input":["a","b"],"encoding_format":"base64","dimensions":64,"user":"u"})");
    const auto& r = ok(result);
    ASSERT_EQ(r.inputs.size(), 2u);
    EXPECT_EQ(r.encoding_format, "base64");
    EXPECT_EQ(r.dimensions, 64);
    EXPECT_EQ(r.user, "u");
  }
  {
    const auto result = parse_embedding_request(R"({"model":"e","input":[5,6]})");
    const auto& r = ok(result);
    ASSERT_EQ(r.inputs.size(), 1u);
    EXPECT_EQ(r.inputs[0].tokens, (std::vector<int32_t>{5, 6}));
  }
  {
    const auto result = parse_embedding_request(R"({"model":"e","input":[[5],[6,7]]})");
    EXPECT_EQ(ok(result).inputs.size(), 2u);
  }
}

TEST(ParseEmbedding, Errors) {
  expect_invalid(parse_embedding_request(R"({"model":"e"})"), "input");
  expect_invalid(parse_embedding_request(R"({"input":"x"})"), "model");
  expect_invalid(parse_embedding_request(R"({"model":"e","input":""})"), "input");
  expect_invalid(parse_embedding_request(R"({"model":"e","input":[]})"), "input");
  expect_invalid(parse_embedding_request(R"({"model":"e","input":["a",""]})"), "input[1]");
  expect_invalid(parse_embedding_request(R"({"model":"e","input":[[]]})"), "input[0]");
  expect_invalid(parse_embedding_request(R"({"model":"e","input":{"a":1}})"), "input");
  expect_invalid(parse_embedding_request(R"({"model":"e","input":"x","encoding_format":"hex"})"),
                 "encoding_format");
  expect_invalid(parse_embedding_request(R"({"model":"e","input":"x","dimensions":0})"),
                 "dimensions");
  std::string many = R"({"model":"e","input":[)";
  for (int i = 0; i < 2049; ++i) many += i == 0 ? "\"a\"" : ",\"a\"";
  many += "]}";
  expect_invalid(parse_embedding_request(many), "input");
}

TEST(ParseTokenize, PromptOrMessages) {
  {
    const auto result = parse_tokenize_request(R"({"model":"m","prompt":"a b c"})");
    const auto& r = expect_ok<tokenize_request>(result);
    EXPECT_EQ(r.model, "m");
    EXPECT_EQ(r.prompt, "a b c");
    EXPECT_TRUE(r.add_special_tokens);
  }
  {
    const auto result = parse_tokenize_request(
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"add_generation_prompt":false,)"
        R"("add_special_tokens":false})");
    const auto& r = expect_ok<tokenize_request>(result);
    EXPECT_FALSE(r.prompt.has_value());
    ASSERT_EQ(r.messages.size(), 1u);
    EXPECT_FALSE(r.add_generation_prompt);
    EXPECT_FALSE(r.add_special_tokens);
  }
  {
    const auto result = parse_tokenize_request(R"({"prompt":""})");
    const auto& r = expect_ok<tokenize_request>(result);
    EXPECT_TRUE(r.model.empty());
    EXPECT_EQ(r.prompt, "");
  }
  expect_invalid(parse_tokenize_request(R"({"model":"m"})"), "prompt");
  expect_invalid(parse_tokenize_request(R"({"model":"m","prompt":[1]})"), "prompt");
  expect_invalid(
      parse_tokenize_request(R"({"model":"m","prompt":"x","messages":[{"role":"user","content":"x"}]})"),
      "messages");
  expect_invalid(parse_tokenize_request(R"({"model":"m","messages":[{"role":"user"}]})"),
                 "messages[0].content");
}

TEST(ParseDetokenize, TokensRequiredAndChecked) {
  const auto result = parse_detokenize_request(R"({"model":"m","tokens":[3,1,4]})");
  EXPECT_EQ(expect_ok<detokenize_request>(result).tokens, (std::vector<int32_t>{3, 1, 4}));
  const auto empty = parse_detokenize_request(R"({"model":"m","tokens":[]})");
  EXPECT_TRUE(expect_ok<detokenize_request>(empty).tokens.empty());
  expect_invalid(parse_detokenize_request(R"({"model":"m"})"), "tokens");
  expect_invalid(parse_detokenize_request(R"({"model":"m","tokens":"1 2"})"), "tokens");
  expect_invalid(parse_detokenize_request(R"({"model":"m","tokens":[1,"2"]})"), "tokens[1]");
  expect_invalid(parse_detokenize_request(R"({"model":"m","tokens":[-5]})"), "tokens[0]");
}

}  // namespace
}  // namespace moat::openai

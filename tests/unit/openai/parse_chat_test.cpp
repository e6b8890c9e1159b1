// /v1/chat/completions request parsing: every field, tolerance, and each validation error.
#include <gtest/gtest.h>

#include "expect_error.h"

namespace moat::openai {
namespace {

using testing::expect_invalid;
using testing::expect_ok;

const chat_request& ok(const chat_parse_result& r) { return expect_ok<chat_request>(r); }

std::string chat_body(const std::string& extra) {
  return R"({"model":"m","messages":[{"role":"user","content":"hi"}])" +
         (extra.empty() ? std::string() : "," + extra) + "}";
}

TEST(ParseChat, MinimalRequestGetsOpenAIDefaults) {
  const auto result = parse_chat_request(chat_body(""));
  const chat_request& r = ok(result);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].role, "user");
  EXPECT_EQ(r.messages[0].content, "hi");
  EXPECT_DOUBLE_EQ(r.sampling.temperature, 1.0);
  EXPECT_DOUBLE_EQ(r.sampling.top_p, 1.0);
  EXPECT_EQ(r.sampling.top_k, -1);
  EXPECT_EQ(r.sampling.n, 1);
  EXPECT_FALSE(r.sampling.max_tokens.has_value());
  EXPECT_FALSE(r.sampling.seed.has_value());
  EXPECT_FALSE(r.sampling.logprobs);
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.stream_opts.include_usage);
  EXPECT_TRUE(r.add_generation_prompt);
  EXPECT_FALSE(r.user.has_value());
}

TEST(ParseChat, EveryFieldIsRead) {
  const auto result = parse_chat_request(chat_body(
      R"("temperature":0.5,"top_p":0.9,"top_k":40,"min_p":0.05,"presence_penalty":-1.5,)"
      R"("frequency_penalty":2,"seed":-3,"n":3,"stop":["a","b"],"logit_bias":{"17":-100,"5":2.5},)"
      R"("max_tokens":9,"max_completion_tokens":7,"logprobs":true,"top_logprobs":4,)"
      R"("stream":true,"stream_options":{"include_usage":true},"add_generation_prompt":false,)"
      R"("user":"u1")"));
  const chat_request& r = ok(result);
  EXPECT_DOUBLE_EQ(r.sampling.temperature, 0.5);
  EXPECT_DOUBLE_EQ(r.sampling.top_p, 0.9);
  EXPECT_EQ(r.sampling.top_k, 40);
  EXPECT_DOUBLE_EQ(r.sampling.min_p, 0.05);
  EXPECT_DOUBLE_EQ(r.sampling.presence_penalty, -1.5);
  EXPECT_DOUBLE_EQ(r.sampling.frequency_penalty, 2.0);
  ASSERT_TRUE(r.sampling.seed.has_value());
  EXPECT_EQ(*r.sampling.seed, static_cast<uint64_t>(int64_t{-3}));
  EXPECT_EQ(r.sampling.n, 3);
  EXPECT_EQ(r.sampling.stop, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(r.sampling.logit_bias.size(), 2u);
  EXPECT_EQ(r.sampling.logit_bias[0].first, 17);
  EXPECT_FLOAT_EQ(r.sampling.logit_bias[0].second, -100.0f);
  EXPECT_EQ(r.sampling.logit_bias[1].first, 5);
  EXPECT_FLOAT_EQ(r.sampling.logit_bias[1].second, 2.5f);
  EXPECT_EQ(r.sampling.max_tokens, 7);  // max_completion_tokens wins over max_tokens
  EXPECT_TRUE(r.sampling.logprobs);
  EXPECT_EQ(r.sampling.top_logprobs, 4);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.stream_opts.include_usage);
  EXPECT_FALSE(r.add_generation_prompt);
  EXPECT_EQ(r.user, "u1");
}

TEST(ParseChat, MaxTokensAloneAndStopAsString) {
  const auto result = parse_chat_request(chat_body(R"("max_tokens":12,"stop":"END","top_k":0)"));
  const chat_request& r = ok(result);
  EXPECT_EQ(r.sampling.max_tokens, 12);
  EXPECT_EQ(r.sampling.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(r.sampling.top_k, -1);  // 0 means off, normalised to -1
}

TEST(ParseChat, NullMeansAbsentAndUnknownFieldsAreIgnored) {
  const auto result = parse_chat_request(chat_body(
      R"("temperature":null,"top_p":null,"n":null,"stop":null,"seed":null,"max_tokens":null,)"
      R"("logprobs":null,"top_logprobs":null,"stream":null,"stream_options":null,"user":null,)"
      R"("logit_bias":null,"tools":[{"type":"function","function":{"name":"f"}}],)"
      R"("response_format":{"type":"text"},"metadata":{"a":"b"},"store":false,)"
      R"("some_future_field":[1,{"x":null}])"));
  const chat_request& r = ok(result);
  EXPECT_DOUBLE_EQ(r.sampling.temperature, 1.0);
  EXPECT_EQ(r.sampling.n, 1);
  EXPECT_TRUE(r.sampling.stop.empty());
  EXPECT_FALSE(r.sampling.max_tokens.has_value());
  EXPECT_FALSE(r.stream);
}

// The parser lists an object's keys once and looks fields up in that list; past its inline
// capacity it falls back to the DOM. Either way a field is found wherever it sits, the first of
// duplicate keys wins (as simdjson's lookup does) and a wrong type is still caught.
TEST(ParseChat, FieldsAreFoundAmongManyKeysAndTheFirstDuplicateWins) {
  for (int unknown : {0, 5, 23, 24, 40}) {
    std::string filler;
    for (int i = 0; i < unknown; ++i)
      filler += "\"x" + std::to_string(i) + "\":" + std::to_string(i) + ",";
    const auto r =
        parse_chat_request(chat_body(filler + R"("temperature":0.25,"temperature":1.5,"n":3)"));
    EXPECT_DOUBLE_EQ(ok(r).sampling.temperature, 0.25) << unknown << " unknown fields";
    EXPECT_EQ(ok(r).sampling.n, 3) << unknown << " unknown fields";
    // Absent fields stay unset, past the list's capacity too.
    EXPECT_FALSE(ok(r).sampling.max_tokens.has_value()) << unknown << " unknown fields";
    EXPECT_DOUBLE_EQ(ok(r).sampling.top_p, 1.0) << unknown << " unknown fields";
    expect_invalid(parse_chat_request(chat_body(filler + R"("top_p":"high")")), "top_p");
  }
}

TEST(ParseChat, CacheSaltIsNotedOnlyAtTheTopLevel) {
  // The gateway searches a body for cache_salt only when the parser saw one (api/open_request.h).
  EXPECT_FALSE(ok(parse_chat_request(chat_body(""))).cache_salt);
  EXPECT_TRUE(ok(parse_chat_request(chat_body(R"("cache_salt":"s")"))).cache_salt);
  EXPECT_TRUE(ok(parse_chat_request(chat_body(R"("cache_salt":7)"))).cache_salt);  // checked later
  // null is "not given", as for every field; a keyed caller's salt is derived all the same.
  EXPECT_FALSE(ok(parse_chat_request(chat_body(R"("cache_salt":null)"))).cache_salt);
  EXPECT_FALSE(
      ok(parse_chat_request(chat_body(R"("metadata":{"cache_salt":"s"},"user":"cache_salt")")))
          .cache_salt);
  const auto nested = parse_chat_request(
      R"({"model":"m","messages":[{"role":"user","content":"\"cache_salt\":1","name":"cache_salt"}]})");
  EXPECT_FALSE(ok(nested).cache_salt);
}

TEST(ParseChat, ContentPartsAreJoinedAndRolesKept) {
  const auto result = parse_chat_request(
      R"({"model":"m","messages":[)"
      R"({"role":"system","content":"sys"},{"role":"developer","content":"dev","name":"d1"},)"
      R"({"role":"user","content":[{"type":"text","text":"one"},{"type":"text","text":"two"}]},)"
      R"({"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",)"
      R"("function":{"name":"f","arguments":"{}"}}]},)"
      R"({"role":"tool","tool_call_id":"c1","content":"42"},)"
      R"({"role":"assistant","content":[{"type":"text","text":"ok"},{"type":"refusal","refusal":"no"}]}]})");
  const chat_request& r = ok(result);
  ASSERT_EQ(r.messages.size(), 6u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].role, "developer");
  EXPECT_EQ(r.messages[1].name, "d1");
  EXPECT_EQ(r.messages[2].content, "one\ntwo");
  EXPECT_EQ(r.messages[3].role, "assistant");
  EXPECT_EQ(r.messages[3].content, "");
  EXPECT_EQ(r.messages[4].role, "tool");
  EXPECT_EQ(r.messages[4].content, "42");
  EXPECT_EQ(r.messages[5].content, "ok");
}

TEST(ParseChat, UnicodeAndEscapesInContentArrive) {
  const auto result = parse_chat_request(
      R"({"model":"m","messages":[{"role":"user","content":"caf\u00e9 \"q\"\n\ud83d\ude00"}]})");
  EXPECT_EQ(ok(result).messages[0].content, "caf\xC3\xA9 \"q\"\n\xF0\x9F\x98\x80");
}

TEST(ParseChat, LargeBodiesParseWithTheirOwnParser) {
  const std::string big(3u << 20, 'x');  // past the size that shares the per-thread parser
  const auto result =
      parse_chat_request(R"({"model":"m","messages":[{"role":"user","content":")" + big + "\"}]}");
  EXPECT_EQ(ok(result).messages.at(0).content.size(), big.size());
  const auto small = parse_chat_request(chat_body(R"("n":2)"));
  EXPECT_EQ(ok(small).sampling.n, 2);
  const auto broken = parse_chat_request(R"({"model":"m","messages":")" + big);
  ASSERT_TRUE(std::holds_alternative<api_error>(broken));
}

TEST(ParseChat, InvalidJsonIs400WithoutParam) {
  for (const char* body : {"", "{", "{\"model\":", "not json", "{\"model\":\"m\",}"}) {
    const auto result = parse_chat_request(body);
    const auto* error = std::get_if<api_error>(&result);
    ASSERT_NE(error, nullptr) << body;
    EXPECT_EQ(error->status, 400);
    EXPECT_EQ(error->type, "invalid_request_error");
    EXPECT_FALSE(error->param.has_value());
    EXPECT_NE(error->message.find("JSON"), std::string::npos);
  }
  const auto array_body = parse_chat_request("[1,2]");
  ASSERT_TRUE(std::holds_alternative<api_error>(array_body));
  EXPECT_NE(std::get<api_error>(array_body).message.find("object"), std::string::npos);
}

TEST(ParseChat, MissingRequiredFields) {
  expect_invalid(parse_chat_request(R"({"messages":[{"role":"user","content":"x"}]})"), "model");
  expect_invalid(parse_chat_request(R"({"model":"m"})"), "messages");
  expect_invalid(parse_chat_request(R"({"model":"m","messages":null})"), "messages");
  expect_invalid(parse_chat_request(R"({"model":"m","messages":[{"content":"x"}]})"),
                 "messages[0].role");
  expect_invalid(parse_chat_request(R"({"model":"m","messages":[{"role":"user"}]})"),
                 "messages[0].content");
  expect_invalid(parse_chat_request(
                     R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant"}]})"),
                 "messages[1].content");
  expect_invalid(parse_chat_request(R"({"model":"m","messages":[{"role":"tool","content":"a"}]})"),
                 "messages[0].tool_call_id");
  expect_invalid(parse_chat_request(
                     R"({"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]})"),
                 "messages[0].content[0].text");
}

TEST(ParseChat, WrongTypes) {
  expect_invalid(parse_chat_request(R"({"model":7,"messages":[{"role":"user","content":"x"}]})"),
                 "model");
  expect_invalid(parse_chat_request(R"({"model":"m","messages":{"role":"user"}})"), "messages");
  expect_invalid(parse_chat_request(R"({"model":"m","messages":["hi"]})"), "messages[0]");
  expect_invalid(parse_chat_request(R"({"model":"m","messages":[{"role":1,"content":"x"}]})"),
                 "messages[0].role");
  const auto content = expect_invalid(
      parse_chat_request(R"({"model":"m","messages":[{"role":"user","content":5}]})"),
      "messages[0].content");
  EXPECT_NE(content.message.find("got an integer"), std::string::npos) << content.message;
  expect_invalid(parse_chat_request(
                     R"({"model":"m","messages":[{"role":"user","content":"x","name":3}]})"),
                 "messages[0].name");
  expect_invalid(parse_chat_request(chat_body(R"("temperature":"hot")")), "temperature");
  expect_invalid(parse_chat_request(chat_body(R"("top_p":true)")), "top_p");
  expect_invalid(parse_chat_request(chat_body(R"("n":1.5)")), "n");
  expect_invalid(parse_chat_request(chat_body(R"("seed":"7")")), "seed");
  expect_invalid(parse_chat_request(chat_body(R"("seed":1.5)")), "seed");
  expect_invalid(parse_chat_request(chat_body(R"("stream":"yes")")), "stream");
  expect_invalid(parse_chat_request(chat_body(R"("stop":5)")), "stop");
  expect_invalid(parse_chat_request(chat_body(R"("stop":["a",5])")), "stop[1]");
  expect_invalid(parse_chat_request(chat_body(R"("logit_bias":[1])")), "logit_bias");
  expect_invalid(parse_chat_request(chat_body(R"("logprobs":1)")), "logprobs");
  expect_invalid(parse_chat_request(chat_body(R"("max_completion_tokens":"9")")),
                 "max_completion_tokens");
  expect_invalid(parse_chat_request(chat_body(R"("user":1)")), "user");
  expect_invalid(parse_chat_request(chat_body(R"("add_generation_prompt":0)")),
                 "add_generation_prompt");
  expect_invalid(parse_chat_request(chat_body(R"("stream":true,"stream_options":true)")),
                 "stream_options");
  expect_invalid(parse_chat_request(
                     chat_body(R"("stream":true,"stream_options":{"include_usage":"y"})")),
                 "stream_options.include_usage");
}

TEST(ParseChat, OutOfRangeValues) {
  const auto temp = expect_invalid(parse_chat_request(chat_body(R"("temperature":2.5)")),
                                   "temperature");
  EXPECT_NE(temp.message.find("<= 2"), std::string::npos) << temp.message;
  expect_invalid(parse_chat_request(chat_body(R"("temperature":-0.1)")), "temperature");
  expect_invalid(parse_chat_request(chat_body(R"("top_p":1.01)")), "top_p");
  expect_invalid(parse_chat_request(chat_body(R"("top_k":-2)")), "top_k");
  expect_invalid(parse_chat_request(chat_body(R"("min_p":2)")), "min_p");
  expect_invalid(parse_chat_request(chat_body(R"("presence_penalty":-2.01)")), "presence_penalty");
  expect_invalid(parse_chat_request(chat_body(R"("frequency_penalty":3)")), "frequency_penalty");
  expect_invalid(parse_chat_request(chat_body(R"("n":0)")), "n");
  expect_invalid(parse_chat_request(chat_body(R"("n":129)")), "n");
  expect_invalid(parse_chat_request(chat_body(R"("n":18446744073709551615)")), "n");
  expect_invalid(parse_chat_request(chat_body(R"("max_tokens":0)")), "max_tokens");
  expect_invalid(parse_chat_request(chat_body(R"("max_completion_tokens":-1)")),
                 "max_completion_tokens");
  expect_invalid(parse_chat_request(chat_body(R"("stop":["a","b","c","d","e"])")), "stop");
  expect_invalid(parse_chat_request(chat_body(R"("logprobs":true,"top_logprobs":21)")),
                 "top_logprobs");
  expect_invalid(parse_chat_request(chat_body(R"("logprobs":true,"top_logprobs":-1)")),
                 "top_logprobs");
  expect_invalid(parse_chat_request(chat_body(R"("logit_bias":{"12":101})")), "logit_bias");
  expect_invalid(parse_chat_request(chat_body(R"("logit_bias":{"12":-100.5})")), "logit_bias");
  expect_invalid(parse_chat_request(chat_body(R"("logit_bias":{"12":"1"})")), "logit_bias");
  expect_invalid(parse_chat_request(R"({"model":"m","messages":[]})"), "messages");
  expect_invalid(parse_chat_request(R"({"model":"m","messages":[{"role":"user","content":[]}]})"),
                 "messages[0].content");
}

TEST(ParseChat, LogitBiasKeysMustBeTokenIds) {
  for (const char* key : {"abc", "-1", "1.5", "", " 3", "99999999999"}) {
    expect_invalid(parse_chat_request(chat_body(std::string(R"("logit_bias":{")") + key + R"(":1})")),
                   "logit_bias");
  }
}

TEST(ParseChat, CrossFieldRules) {
  const auto top = expect_invalid(parse_chat_request(chat_body(R"("top_logprobs":2)")),
                                  "top_logprobs");
  EXPECT_NE(top.message.find("logprobs"), std::string::npos);
  expect_invalid(parse_chat_request(chat_body(R"("logprobs":false,"top_logprobs":2)")),
                 "top_logprobs");
  // OpenAI rejects stream_options unless stream is true.
  expect_invalid(parse_chat_request(chat_body(R"("stream_options":{"include_usage":true})")),
                 "stream_options");
  expect_invalid(parse_chat_request(
                     chat_body(R"("stream":false,"stream_options":{"include_usage":true})")),
                 "stream_options");
}

TEST(ParseChat, RolesAndPartsThatAreRefused) {
  const auto role = expect_invalid(
      parse_chat_request(R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})"),
      "messages[0].role");
  EXPECT_NE(role.message.find("wizard"), std::string::npos);
  const auto image = expect_invalid(
      parse_chat_request(R"({"model":"m","messages":[{"role":"user","content":[)"
                         R"({"type":"text","text":"look"},)"
                         R"({"type":"image_url","image_url":{"url":"http://x/y.png"}}]}]})"),
      "messages[0].content[1].type");
  EXPECT_NE(image.message.find("image_url"), std::string::npos);
  expect_invalid(parse_chat_request(R"({"model":"m","messages":[{"role":"user","content":[)"
                                    R"({"type":"input_audio","input_audio":{}}]}]})"),
                 "messages[0].content[0].type");
  expect_invalid(parse_chat_request(
                     R"({"model":"m","messages":[{"role":"user","content":[{"type":"hologram"}]}]})"),
                 "messages[0].content[0].type");
  expect_invalid(parse_chat_request(R"({"model":"m","messages":[{"role":"user","content":["x"]}]})"),
                 "messages[0].content[0]");
}

TEST(ParseChat, ErrorJsonHasTheOpenAIShape) {
  const auto result = parse_chat_request(chat_body(R"("n":0)"));
  ASSERT_TRUE(std::holds_alternative<api_error>(result));
  const std::string json = error_json(std::get<api_error>(result));
  EXPECT_EQ(json.rfind("{\"error\":{\"message\":", 0), 0u) << json;
  EXPECT_NE(json.find("\"type\":\"invalid_request_error\""), std::string::npos);
  EXPECT_NE(json.find("\"param\":\"n\""), std::string::npos);
  EXPECT_NE(json.find("\"code\":null"), std::string::npos);
}

// Tool use and structured output are read (not acted on) so the handler can refuse what no
// backend honours; see ChatTools in the e2e suite for the answers.
TEST(ParseChat, ToolUseAndResponseFormatAreRead) {
  const std::string tools = R"("tools":[{"type":"function","function":{"name":"f"}}])";
  EXPECT_EQ(ok(parse_chat_request(chat_body(""))).tool_choice, "");
  EXPECT_EQ(ok(parse_chat_request(chat_body(tools))).tool_choice, "auto");  // OpenAI's default
  EXPECT_EQ(ok(parse_chat_request(chat_body(tools))).tools, 1u);
  EXPECT_EQ(ok(parse_chat_request(chat_body(tools + R"(,"tool_choice":"none")"))).tool_choice, "none");
  EXPECT_EQ(ok(parse_chat_request(chat_body(tools + R"(,"tool_choice":"required")"))).tool_choice, "required");
  EXPECT_EQ(ok(parse_chat_request(chat_body(tools + R"(,"tool_choice":{"type":"function","function":{"name":"f"}})")))
                .tool_choice,
            "function");
  EXPECT_EQ(ok(parse_chat_request(chat_body(R"("functions":[{"name":"f"}])"))).tool_choice, "auto");
  EXPECT_EQ(ok(parse_chat_request(chat_body(R"("functions":[{"name":"f"}],"function_call":"none")"))).tool_choice,
            "none");
  expect_invalid(parse_chat_request(chat_body(tools + R"(,"tool_choice":"sometimes")")), "tool_choice");
  expect_invalid(parse_chat_request(chat_body(tools + R"(,"tool_choice":3)")), "tool_choice");
  expect_invalid(parse_chat_request(chat_body(R"("tools":{"a":1})")), "tools");

  EXPECT_EQ(ok(parse_chat_request(chat_body(""))).response_format, "text");
  EXPECT_EQ(ok(parse_chat_request(chat_body(R"("response_format":{"type":"json_object"})"))).response_format,
            "json_object");
  expect_invalid(parse_chat_request(chat_body(R"("response_format":"json")")), "response_format");
  expect_invalid(parse_chat_request(chat_body(R"("response_format":{})")), "response_format.type");
}

}  // namespace
}  // namespace moat::openai

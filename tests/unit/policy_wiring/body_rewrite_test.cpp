#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

#include "host/request_builder.h"

namespace moat::host {
namespace {

simdjson::dom::element parse(simdjson::dom::parser& p, const std::string& text) {
  simdjson::dom::element root;
  EXPECT_EQ(p.parse(text).get(root), simdjson::SUCCESS) << text;
  return root;
}

TEST(redacted_body_json, chat_messages_replaced_other_fields_kept) {
  const std::string body =
      R"({"model":"a","messages":[{"role":"user","content":[{"type":"text","text":"bob@x.com"}]}],)"
      R"("temperature":0.5,"stop":["\n"],"stream_options":{"include_usage":true}})";
  std::vector<openai::chat_message> msgs = {{"user", "[EMAIL] \"quoted\"", "bob"}};
  const std::string out = redacted_body_json(body, "b", &msgs, nullptr, {});
  EXPECT_EQ(out.find("bob@x.com"), std::string::npos) << out;
  simdjson::dom::parser p;
  auto root = parse(p, out);
  EXPECT_EQ(std::string_view(root["model"]), "b");  // a policy routed the request
  EXPECT_EQ(std::string_view(root["messages"].at(0)["content"]), "[EMAIL] \"quoted\"");
  EXPECT_EQ(std::string_view(root["messages"].at(0)["name"]), "bob");
  EXPECT_EQ(double(root["temperature"]), 0.5);
  EXPECT_EQ(std::string_view(root["stop"].at(0)), "\n");
  EXPECT_TRUE(bool(root["stream_options"]["include_usage"]));
}

TEST(redacted_body_json, prompts_single_and_list_and_tokens) {
  std::vector<openai::prompt> one = {{"call [PHONE]", {}, false}};
  std::string out = redacted_body_json(R"({"model":"m","prompt":"call 555-0100"})", "m", nullptr, &one, "prompt");
  EXPECT_EQ(out.find("555-0100"), std::string::npos);
  simdjson::dom::parser p;
  EXPECT_EQ(std::string_view(parse(p, out)["prompt"]), "call [PHONE]");

  std::vector<openai::prompt> many = {{"x [A]", {}, false}, {"", {1, 2, 3}, true}};
  out = redacted_body_json(R"({"input":["x secret",[1,2,3]],"model":"m"})", "m", nullptr, &many, "input");
  simdjson::dom::parser p2;
  auto root = parse(p2, out);
  EXPECT_EQ(std::string_view(root["input"].at(0)), "x [A]");
  EXPECT_EQ(int64_t(root["input"].at(1).at(2)), 3);
  EXPECT_EQ(out.find("secret"), std::string::npos);
}

TEST(redacted_body_json, unparsable_body_keeps_nothing_of_it) {
  std::vector<openai::prompt> one = {{"clean", {}, false}};
  const std::string out = redacted_body_json("{\"prompt\":\"raw secret", "m", nullptr, &one, "prompt");
  EXPECT_EQ(out.find("raw"), std::string::npos);
  simdjson::dom::parser p;
  EXPECT_EQ(std::string_view(parse(p, out)["prompt"]), "clean");
}

}  // namespace
}  // namespace moat::host

// Every response kind serialized, parsed back with simdjson and checked field by field.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <cstring>

#include "openai/protocol.h"

namespace moat::openai {
namespace {

namespace dom = simdjson::dom;

// Parses `json` with a parser owned by the test, failing the test on invalid JSON.
class parsed {
 public:
  explicit parsed(const std::string& json) {
    auto result = parser_.parse(json);
    EXPECT_EQ(result.error(), simdjson::SUCCESS) << json;
    root_ = result.value_unsafe();
  }
  dom::element root() const { return root_; }

 private:
  dom::parser parser_;
  dom::element root_;
};

std::string str(dom::element e) { return std::string(e.get_string().value()); }

response_meta meta() {
  response_meta m;
  m.id = "chatcmpl-abc";
  m.created = 1700000000;
  m.model = "tiny";
  m.system_fingerprint = "fp_moat_0.1.0";
  return m;
}

logprob_item item(const std::string& token, double lp, std::vector<token_logprob> top = {}) {
  logprob_item it;
  it.chosen.token = token;
  it.chosen.logprob = lp;
  it.top = std::move(top);
  return it;
}

TEST(SerializeChat, WholeResponseFieldByField) {
  choice_result a;
  a.index = 0;
  a.text = "Hello \"world\"\n";
  a.finish_reason = "stop";
  choice_result b;
  b.index = 1;
  b.text = "cut";
  b.finish_reason = "length";
  b.has_logprobs = true;
  b.logprobs.push_back(item("cut", -0.25, {{"cut", {}, -0.25}, {"cat", {}, -1.5}}));
  const std::string json = chat_completion_json(meta(), std::vector<choice_result>{a, b}, {5, 7});
  parsed doc(json);
  const auto root = doc.root();
  EXPECT_EQ(str(root["id"]), "chatcmpl-abc");
  EXPECT_EQ(str(root["object"]), "chat.completion");
  EXPECT_EQ(root["created"].get_int64().value(), 1700000000);
  EXPECT_EQ(str(root["model"]), "tiny");
  EXPECT_EQ(str(root["system_fingerprint"]), "fp_moat_0.1.0");
  const auto choices = root["choices"].get_array().value();
  ASSERT_EQ(choices.size(), 2u);
  const auto c0 = choices.at(0).value();
  EXPECT_EQ(c0["index"].get_int64().value(), 0);
  EXPECT_EQ(str(c0["message"]["role"]), "assistant");
  EXPECT_EQ(str(c0["message"]["content"]), "Hello \"world\"\n");
  EXPECT_TRUE(c0["message"]["refusal"].is_null());
  EXPECT_TRUE(c0["logprobs"].is_null());
  EXPECT_EQ(str(c0["finish_reason"]), "stop");
  const auto c1 = choices.at(1).value();
  EXPECT_EQ(str(c1["finish_reason"]), "length");
  const auto lp = c1["logprobs"];
  EXPECT_TRUE(lp["refusal"].is_null());
  const auto content = lp["content"].get_array().value();
  ASSERT_EQ(content.size(), 1u);
  const auto t0 = content.at(0).value();
  EXPECT_EQ(str(t0["token"]), "cut");
  EXPECT_DOUBLE_EQ(t0["logprob"].get_double().value(), -0.25);
  const auto bytes = t0["bytes"].get_array().value();
  ASSERT_EQ(bytes.size(), 3u);
  EXPECT_EQ(bytes.at(0).get_int64().value(), 'c');
  const auto top = t0["top_logprobs"].get_array().value();
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(str(top.at(1)["token"]), "cat");
  EXPECT_DOUBLE_EQ(top.at(1)["logprob"].get_double().value(), -1.5);
  EXPECT_EQ(top.at(1)["bytes"].get_array().value().size(), 3u);
  const auto usage = root["usage"];
  EXPECT_EQ(usage["prompt_tokens"].get_int64().value(), 5);
  EXPECT_EQ(usage["completion_tokens"].get_int64().value(), 7);
  EXPECT_EQ(usage["total_tokens"].get_int64().value(), 12);
}

TEST(SerializeChat, PartialUtf8TokenKeepsItsBytes) {
  choice_result c;
  c.text = "\xF0\x9F\x98\x80";
  c.finish_reason = "stop";
  c.has_logprobs = true;
  logprob_item half = item("\xF0\x9F", -0.5);  // the first half of an emoji
  c.logprobs.push_back(half);
  token_logprob with_bytes{"x", {0xF0, 0x9F}, -1.0};
  c.logprobs.push_back(logprob_item{with_bytes, {}});
  parsed doc(chat_completion_json(meta(), std::vector<choice_result>{c}, {}));
  const auto content = doc.root()["choices"].at(0)["logprobs"]["content"].get_array().value();
  EXPECT_EQ(str(content.at(0)["token"]), "\xEF\xBF\xBD\xEF\xBF\xBD");
  const auto bytes = content.at(0)["bytes"].get_array().value();
  ASSERT_EQ(bytes.size(), 2u);
  EXPECT_EQ(bytes.at(0).get_int64().value(), 0xF0);
  EXPECT_EQ(bytes.at(1).get_int64().value(), 0x9F);
  EXPECT_EQ(content.at(1)["bytes"].get_array().value().size(), 2u);  // explicit bytes win
}

TEST(SerializeChat, NonFiniteLogprobsStayNumbers) {
  choice_result c;
  c.finish_reason = "stop";
  c.has_logprobs = true;
  c.logprobs.push_back(item("a", -INFINITY));
  c.logprobs.push_back(item("b", NAN));
  parsed doc(chat_completion_json(meta(), std::vector<choice_result>{c}, {}));
  const auto content = doc.root()["choices"].at(0)["logprobs"]["content"].get_array().value();
  EXPECT_DOUBLE_EQ(content.at(0)["logprob"].get_double().value(), -9999.0);
  EXPECT_DOUBLE_EQ(content.at(1)["logprob"].get_double().value(), -9999.0);
}

TEST(SerializeCompletion, WholeResponseWithLogprobs) {
  response_meta m = meta();
  m.id = "cmpl-1";
  choice_result c;
  c.index = 3;
  c.text = "ab cd";
  c.finish_reason = "length";
  c.has_logprobs = true;
  c.logprobs.push_back(item("ab ", -0.5, {{"ab ", {}, -0.5}, {"xy", {}, -2.0}}));
  c.logprobs.push_back(item("cd", -0.125));
  parsed doc(completion_json(m, std::vector<choice_result>{c}, {2, 2}));
  const auto root = doc.root();
  EXPECT_EQ(str(root["object"]), "text_completion");
  EXPECT_EQ(str(root["id"]), "cmpl-1");
  const auto c0 = root["choices"].at(0).value();
  EXPECT_EQ(c0["index"].get_int64().value(), 3);
  EXPECT_EQ(str(c0["text"]), "ab cd");
  EXPECT_EQ(str(c0["finish_reason"]), "length");
  const auto lp = c0["logprobs"];
  const auto tokens = lp["tokens"].get_array().value();
  ASSERT_EQ(tokens.size(), 2u);
  EXPECT_EQ(str(tokens.at(1)), "cd");
  EXPECT_DOUBLE_EQ(lp["token_logprobs"].at(1).get_double().value(), -0.125);
  const auto top0 = lp["top_logprobs"].at(0).get_object().value();
  EXPECT_EQ(top0.size(), 2u);
  EXPECT_DOUBLE_EQ(top0["xy"].get_double().value(), -2.0);
  // No alternatives asked for: the chosen token alone.
  EXPECT_DOUBLE_EQ(lp["top_logprobs"].at(1)["cd"].get_double().value(), -0.125);
  EXPECT_EQ(lp["text_offset"].at(0).get_int64().value(), 0);
  EXPECT_EQ(lp["text_offset"].at(1).get_int64().value(), 3);
  EXPECT_EQ(root["usage"]["total_tokens"].get_int64().value(), 4);
}

TEST(SerializeCompletion, LogprobsNullWhenNotAskedAndFinishDefaultsToStop) {
  choice_result c;
  c.text = "x";
  parsed doc(completion_json(meta(), std::vector<choice_result>{c}, {}));
  const auto c0 = doc.root()["choices"].at(0).value();
  EXPECT_TRUE(c0["logprobs"].is_null());
  EXPECT_EQ(str(c0["finish_reason"]), "stop");
}

TEST(SerializeChunks, ChatChunkSequence) {
  chunk_delta first;
  first.index = 1;
  first.first = true;
  first.text = "Hi";
  parsed d1(chat_chunk_json(meta(), first, false));
  const auto r1 = d1.root();
  EXPECT_EQ(str(r1["object"]), "chat.completion.chunk");
  EXPECT_EQ(str(r1["id"]), "chatcmpl-abc");
  EXPECT_EQ(r1["created"].get_int64().value(), 1700000000);
  const auto ch1 = r1["choices"].at(0).value();
  EXPECT_EQ(ch1["index"].get_int64().value(), 1);
  EXPECT_EQ(str(ch1["delta"]["role"]), "assistant");
  EXPECT_EQ(str(ch1["delta"]["content"]), "Hi");
  EXPECT_TRUE(ch1["finish_reason"].is_null());
  EXPECT_TRUE(ch1["logprobs"].is_null());
  EXPECT_EQ(r1["usage"].error(), simdjson::NO_SUCH_FIELD);  // only with include_usage

  chunk_delta middle;
  middle.text = " there";
  middle.has_logprobs = true;
  const std::vector<logprob_item> there{item(" there", -0.1)};
  middle.logprobs = there;
  parsed d2(chat_chunk_json(meta(), middle, true));
  const auto ch2 = d2.root()["choices"].at(0).value();
  EXPECT_EQ(ch2["delta"]["role"].error(), simdjson::NO_SUCH_FIELD);
  EXPECT_EQ(str(ch2["delta"]["content"]), " there");
  EXPECT_EQ(ch2["logprobs"]["content"].get_array().value().size(), 1u);
  EXPECT_TRUE(d2.root()["usage"].is_null());

  chunk_delta last;
  last.finish_reason = "stop";
  parsed d3(chat_chunk_json(meta(), last, true));
  const auto ch3 = d3.root()["choices"].at(0).value();
  EXPECT_EQ(ch3["delta"].get_object().value().size(), 0u);
  EXPECT_EQ(str(ch3["finish_reason"]), "stop");

  parsed d4(chat_usage_chunk_json(meta(), {3, 4}));
  EXPECT_EQ(d4.root()["choices"].get_array().value().size(), 0u);
  EXPECT_EQ(d4.root()["usage"]["total_tokens"].get_int64().value(), 7);
  EXPECT_EQ(str(d4.root()["object"]), "chat.completion.chunk");
}

// The event writer, with the stream's shared text made once, appends exactly what
// sse_data(…_chunk_json(…)) makes, after what is there: plain deltas of choice 0 (its fast path)
// and every other kind of chunk.
TEST(SerializeChunks, EventsAppendTheFramedChunk) {
  std::vector<chunk_delta> deltas;
  const std::vector<logprob_item> hi{item("hi", -0.5)};
  for (uint32_t index : {0u, 1u, 12u}) {
    for (bool first : {false, true}) {
      for (std::string_view text :
           {"", "hi", " benchmark,", "he said \"hi\"\n", "caf\xc3\xa9 \xff"}) {
        for (std::string_view finish : {"", "length"}) {
          for (bool logprobs : {false, true}) {
            chunk_delta d;
            d.index = index;
            d.first = first;
            d.text = text;
            d.finish_reason = finish;
            d.has_logprobs = logprobs;
            if (logprobs) d.logprobs = hi;
            d.text_offset = 3;
            deltas.push_back(std::move(d));
          }
        }
      }
    }
  }
  for (bool usage : {false, true}) {
    for (bool chat : {true, false}) {
      chunk_framing framing(meta(), chat, usage);
      std::string out = "data: [earlier]\n\n";
      std::string want = out;
      for (const auto& d : deltas) {
        framing.append_event(out, d);
        want += sse_data(chat ? chat_chunk_json(meta(), d, usage)
                              : completion_chunk_json(meta(), d, usage));
      }
      EXPECT_EQ(out, want) << "chat " << chat << " usage " << usage;
    }
  }
}

// The text of `created` is kept between responses (one conversion per second): each response
// still shows its own, whatever came before it.
TEST(SerializeChunks, EachResponseShowsItsOwnCreated) {
  for (const int64_t created : {int64_t{1700000000}, int64_t{1700000001}, int64_t{0}, int64_t{-5},
                                int64_t{1700000000}, INT64_MAX, INT64_MIN, int64_t{7}}) {
    response_meta m = meta();
    m.created = created;
    chunk_delta d;
    d.text = "x";
    parsed chunk(chat_chunk_json(m, d, false));
    EXPECT_EQ(chunk.root()["created"].get_int64().value(), created);
    parsed whole(chat_completion_json(m, {}, {}));
    EXPECT_EQ(whole.root()["created"].get_int64().value(), created);
    chunk_framing framing(m, false, false);
    std::string event;
    framing.append_plain(event, "y");
    d.text = "y";
    EXPECT_EQ(event, sse_data(completion_chunk_json(m, d, false)));
  }
}

// A stream's framing is copied from the last one this thread made when only the id differs
// (the id written over it): each framing in a run of streams, whatever came before it, writes
// exactly what its own meta makes, and a plain id is copied as an escaped one reads.
TEST(SerializeChunks, EachStreamShowsItsOwnIdentity) {
  struct stream_case {
    std::string id;
    bool id_plain;
    int64_t created;
    std::string model;
    std::string fingerprint;
    bool chat;
    bool usage;
  };
  const std::vector<stream_case> cases = {
      {"chatcmpl-AAAAAAAAAAAAAAAAAAAAAAAA", true, 1700000000, "echo", "fp_moat_0.1.0", true, false},
      {"chatcmpl-BBBBBBBBBBBBBBBBBBBBBBBB", true, 1700000000, "echo", "fp_moat_0.1.0", true, false},
      {"chatcmpl-CCCCCCCCCCCCCCCCCCCCCCCC", true, 1700000000, "echo", "fp_moat_0.1.0", true, true},
      {"cmpl-DDDDDDDDDDDDDDDDDDDDDDDD", true, 1700000000, "echo", "fp_moat_0.1.0", false, true},
      {"cmpl-EEEEEEEEEEEEEEEEEEEEEEEE", true, 1700000000, "echo", "fp_moat_0.1.0", false, true},
      {"cmpl-FFFFFFFFFFFFFFFFFFFFFFFFF", true, 1700000000, "echo", "fp_moat_0.1.0", false, true},
      {"cmpl-GGGGGGGGGGGGGGGGGGGGGGGGG", true, 1700000001, "echo", "fp_moat_0.1.0", false, true},
      {"cmpl-HHHHHHHHHHHHHHHHHHHHHHHHH", true, 1700000001, "echp", "fp_moat_0.1.0", false, true},
      {"cmpl-IIIIIIIIIIIIIIIIIIIIIIIII", true, 1700000001, "echp", "fp_moat_0.1.1", false, true},
      {"cmpl-JJJJJJJJJJJJJJJJJJJJJJJJJ", true, 1700000001, "echp", "", false, true},
      {"cmpl-KKKKKKKKKKKKKKKKKKKKKKKKK", true, 1700000001, "echp", "", false, true},
      {"cmpl-\"quoted\"-LLLLLLLLLLLLLLLLL", false, 1700000001, "echp", "", false, true},
      {"cmpl-MMMMMMMMMMMMMMMMMMMMMMMMM", true, 1700000001, "e\"c\\h\np", "", false, true},
      {"cmpl-NNNNNNNNNNNNNNNNNNNNNNNNN", true, 1700000001, "e\"c\\h\np", "", false, true},
      {"cmpl-OOOOOOOOOOOOOOOOOOOOOOOOO", true, 1700000001, "e\"c\\h\np", "", true, false},
      {"chatcmpl-PPPPPPPPPPPPPPPPPPPPPPPP", true, 1700000000, "echo", "fp_moat_0.1.0", true, false},
  };
  for (const auto& c : cases) {
    response_meta m;
    m.id = c.id;
    m.id_plain = c.id_plain;
    m.created = c.created;
    m.model = c.model;
    m.system_fingerprint = c.fingerprint;
    chunk_framing framing(m, c.chat, c.usage);
    std::string out;
    std::string want;
    chunk_delta d;
    d.first = c.chat;
    d.text = "hi";
    framing.append_event(out, d);
    want +=
        sse_data(c.chat ? chat_chunk_json(m, d, c.usage) : completion_chunk_json(m, d, c.usage));
    d.first = false;
    d.text = " there";
    framing.append_plain(out, d.text);
    want +=
        sse_data(c.chat ? chat_chunk_json(m, d, c.usage) : completion_chunk_json(m, d, c.usage));
    EXPECT_EQ(out, want) << c.id;
    // The plain id reads as the same text an escaped one would.
    response_meta escaped = m;
    escaped.id_plain = false;
    EXPECT_EQ(chat_completion_json(m, {}, {}), chat_completion_json(escaped, {}, {})) << c.id;
  }
}

TEST(SerializeChunks, FirstChatChunkWithoutTextStillHasContent) {
  chunk_delta first;
  first.first = true;
  parsed doc(chat_chunk_json(meta(), first, false));
  EXPECT_EQ(str(doc.root()["choices"].at(0)["delta"]["content"]), "");
}

TEST(SerializeChunks, CompletionChunksCarryTextOffsets) {
  chunk_delta d;
  d.index = 2;
  d.text = "cd ef";
  d.text_offset = 10;
  d.has_logprobs = true;
  const std::vector<logprob_item> tokens{item("cd ", -1), item("ef", -2)};
  d.logprobs = tokens;
  parsed doc(completion_chunk_json(meta(), d, true));
  const auto root = doc.root();
  EXPECT_EQ(str(root["object"]), "text_completion");
  const auto c = root["choices"].at(0).value();
  EXPECT_EQ(c["index"].get_int64().value(), 2);
  EXPECT_EQ(str(c["text"]), "cd ef");
  EXPECT_TRUE(c["finish_reason"].is_null());
  EXPECT_EQ(c["logprobs"]["text_offset"].at(0).get_int64().value(), 10);
  EXPECT_EQ(c["logprobs"]["text_offset"].at(1).get_int64().value(), 13);
  EXPECT_TRUE(root["usage"].is_null());

  parsed usage(completion_usage_chunk_json(meta(), {1, 2}));
  EXPECT_EQ(usage.root()["choices"].get_array().value().size(), 0u);
  EXPECT_EQ(usage.root()["usage"]["completion_tokens"].get_int64().value(), 2);
}

TEST(SerializeEmbeddings, FloatAndBase64) {
  const std::vector<std::vector<float>> vectors = {{0.5f, -0.25f, 0.1f}, {1.0f, 0.0f, 0.0f}};
  parsed doc(embeddings_json("emb", vectors, "float", 9));
  const auto root = doc.root();
  EXPECT_EQ(str(root["object"]), "list");
  EXPECT_EQ(str(root["model"]), "emb");
  EXPECT_EQ(root["usage"]["prompt_tokens"].get_int64().value(), 9);
  EXPECT_EQ(root["usage"]["total_tokens"].get_int64().value(), 9);
  const auto data = root["data"].get_array().value();
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(str(data.at(1)["object"]), "embedding");
  EXPECT_EQ(data.at(1)["index"].get_int64().value(), 1);
  const auto v0 = data.at(0)["embedding"].get_array().value();
  ASSERT_EQ(v0.size(), 3u);
  // Round trip: the printed float reads back to the same float.
  EXPECT_EQ(static_cast<float>(v0.at(2).get_double().value()), 0.1f);
  EXPECT_EQ(static_cast<float>(v0.at(1).get_double().value()), -0.25f);

  parsed b64(embeddings_json("emb", {{1.0f, -2.0f}}, "base64", 1));
  // 1.0f = 00 00 80 3F, -2.0f = 00 00 00 C0 (little endian).
  EXPECT_EQ(str(b64.root()["data"].at(0)["embedding"]), "AACAPwAAAMA=");
}

TEST(SerializeModels, ListAndCard) {
  model_card a{"tiny", 1700000000, "moat", 2048};
  model_card b{"echo", 5, "moat", std::nullopt};
  parsed one(model_json(a));
  EXPECT_EQ(str(one.root()["id"]), "tiny");
  EXPECT_EQ(str(one.root()["object"]), "model");
  EXPECT_EQ(one.root()["created"].get_int64().value(), 1700000000);
  EXPECT_EQ(str(one.root()["owned_by"]), "moat");
  EXPECT_EQ(one.root()["max_model_len"].get_int64().value(), 2048);
  parsed list(model_list_json({a, b}));
  EXPECT_EQ(str(list.root()["object"]), "list");
  const auto data = list.root()["data"].get_array().value();
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(str(data.at(1)["id"]), "echo");
  EXPECT_EQ(data.at(1)["max_model_len"].error(), simdjson::NO_SUCH_FIELD);
  parsed empty(model_list_json({}));
  EXPECT_EQ(empty.root()["data"].get_array().value().size(), 0u);
}

TEST(SerializeTokenize, TokensAndText) {
  parsed t(tokenize_json({5, -1, 7}, 4096));
  EXPECT_EQ(t.root()["count"].get_int64().value(), 3);
  EXPECT_EQ(t.root()["max_model_len"].get_int64().value(), 4096);
  EXPECT_EQ(t.root()["tokens"].at(2).get_int64().value(), 7);
  parsed d(detokenize_json("a \"b\""));
  EXPECT_EQ(str(d.root()["prompt"]), "a \"b\"");
}

TEST(SerializeErrors, ErrorBodyAndSse) {
  api_error e = invalid_request("bad \"n\"", "n", "some_code");
  parsed doc(error_json(e));
  const auto err = doc.root()["error"];
  EXPECT_EQ(str(err["message"]), "bad \"n\"");
  EXPECT_EQ(str(err["type"]), "invalid_request_error");
  EXPECT_EQ(str(err["param"]), "n");
  EXPECT_EQ(str(err["code"]), "some_code");
  api_error server;
  server.status = 500;
  server.type = "server_error";
  server.message = "boom";
  parsed doc2(error_json(server));
  EXPECT_TRUE(doc2.root()["error"]["param"].is_null());
  EXPECT_TRUE(doc2.root()["error"]["code"].is_null());

  const std::string frame = sse_error(server);
  EXPECT_EQ(frame.rfind("data: {\"error\":", 0), 0u);
  EXPECT_EQ(frame.substr(frame.size() - 2), "\n\n");
}

TEST(Sse, FramingIsOneDataLine) {
  EXPECT_EQ(sse_data("{\"a\":1}"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(sse_done, "data: [DONE]\n\n");
  // A chunk whose text holds newlines still frames as one line: JSON escapes them.
  chunk_delta d;
  d.first = true;
  d.text = "line1\nline2\r\n";
  const std::string frame = sse_data(chat_chunk_json(meta(), d, false));
  EXPECT_EQ(frame.find('\n'), frame.size() - 2);
  EXPECT_EQ(frame.find('\r'), std::string::npos);
}

}  // namespace
}  // namespace moat::openai

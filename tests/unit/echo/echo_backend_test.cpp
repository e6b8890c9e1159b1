// The echo plugin through its C table: entry, options, capabilities, chat, completions,
// chunking, limits, n, logprobs, embeddings, tokenize.
#include <cmath>
#include <cstring>

#include "echo_harness.h"

namespace moat::echo::testing {
namespace {

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

std::vector<recorded_event> of_kind(const std::vector<recorded_event>& events, moat_event_kind kind) {
  std::vector<recorded_event> out;
  for (const auto& e : events) {
    if (e.kind == kind) out.push_back(e);
  }
  return out;
}

TEST(EchoEntry, TableIsCompleteAndVersioned) {
  const moat_backend_api* api = load_echo();
  ASSERT_NE(api, nullptr);
  EXPECT_EQ(api->struct_size, sizeof(moat_backend_api));
  EXPECT_EQ(api->abi_version, MOAT_BACKEND_ABI_VERSION);
  EXPECT_EQ(std::string(api->name.data, api->name.size), "echo");
  EXPECT_NE(api->create, nullptr);
  EXPECT_NE(api->destroy, nullptr);
  EXPECT_NE(api->capabilities, nullptr);
  EXPECT_NE(api->submit, nullptr);
  EXPECT_NE(api->cancel, nullptr);
  EXPECT_NE(api->tokenize, nullptr);
  EXPECT_NE(api->detokenize, nullptr);
  EXPECT_NE(api->stats, nullptr);
}

using EchoOptions = echo_fixture;

TEST_F(EchoOptions, BadOptionsFailCreateNamingTheOption) {
  moat_error err{};
  EXPECT_EQ(create(R"({"chunk_chars":2,"colour":"red"})", &err), nullptr);
  EXPECT_EQ(err.code, MOAT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("colour"), std::string::npos) << err.message;
  EXPECT_EQ(create(R"({"delay_ms":"soon"})", &err), nullptr);
  EXPECT_NE(std::string(err.message).find("delay_ms"), std::string::npos) << err.message;
  EXPECT_EQ(create(R"({"chunk_chars":-1})", &err), nullptr);
  EXPECT_NE(std::string(err.message).find("chunk_chars"), std::string::npos) << err.message;
  EXPECT_EQ(create(R"({"fault":"explode"})", &err), nullptr);
  EXPECT_NE(std::string(err.message).find("fault"), std::string::npos) << err.message;
  EXPECT_EQ(create(R"({"embedding_dim":0})", &err), nullptr);
  EXPECT_NE(std::string(err.message).find("embedding_dim"), std::string::npos) << err.message;
  EXPECT_EQ(create(R"({"max_context":1)", &err), nullptr);  // not JSON
  EXPECT_EQ(create(R"([1,2])", &err), nullptr);
}

TEST_F(EchoOptions, GoodOptionsAndCapabilities) {
  EXPECT_NE(create(""), nullptr);
  EXPECT_NE(create("{}"), nullptr);
  EXPECT_NE(create(R"({"chunk_chars":"4","delay_ms":0,"fault":"none","workers":1})"), nullptr);
  moat_backend* b = create(R"({"max_context":100,"embedding_dim":8})");
  ASSERT_NE(b, nullptr);
  moat_capabilities caps{};
  caps.struct_size = sizeof caps;
  ASSERT_EQ(api_->capabilities(b, &caps), MOAT_OK);
  EXPECT_EQ(caps.flags, static_cast<uint32_t>(MOAT_CAP_CHAT | MOAT_CAP_COMPLETIONS |
                                              MOAT_CAP_EMBEDDINGS | MOAT_CAP_TOKENIZE |
                                              MOAT_CAP_LOGPROBS | MOAT_CAP_TOKEN_PROMPTS));
  EXPECT_EQ(caps.max_context, 100u);
  EXPECT_EQ(caps.embedding_dim, 8u);
  EXPECT_EQ(caps.max_top_logprobs, 20u);
  EXPECT_EQ(std::string(caps.owned_by.data, caps.owned_by.size), "moat");

  // An older host with a shorter struct: nothing past its size is written.
  struct {
    moat_capabilities caps;
    uint32_t guard;
  } small{};
  small.caps.struct_size = offsetof(moat_capabilities, embedding_dim);
  small.caps.embedding_dim = 12345;
  ASSERT_EQ(api_->capabilities(b, &small.caps), MOAT_OK);
  EXPECT_EQ(small.caps.max_context, 100u);
  EXPECT_EQ(small.caps.embedding_dim, 12345u);
}

using EchoChat = echo_fixture;

TEST_F(EchoChat, AnswersTheLastUserMessageOneWordPerDelta) {
  moat_backend* b = create("{}");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_CHAT, 1);
  req.message("system", "be brief please")
      .message("user", "first question")
      .message("assistant", "an answer")
      .message("user", "hello  big world");
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  const auto events = rec.events();
  const auto deltas = of_kind(events, MOAT_EVENT_DELTA);
  ASSERT_EQ(deltas.size(), 3u);
  EXPECT_EQ(deltas[0].text, "hello  ");  // each word keeps its trailing whitespace
  EXPECT_EQ(deltas[1].text, "big ");
  EXPECT_EQ(deltas[2].text, "world");
  for (const auto& d : deltas) {
    EXPECT_EQ(d.index, 0u);
    EXPECT_EQ(d.tokens.size(), 1u);
    EXPECT_TRUE(d.chosen.empty());  // logprobs not asked
  }
  EXPECT_EQ(rec.text_of(0), "hello  big world");
  const auto finishes = of_kind(events, MOAT_EVENT_FINISH);
  ASSERT_EQ(finishes.size(), 1u);
  EXPECT_EQ(finishes[0].finish, MOAT_FINISH_STOP);
  const recorded_event& done = rec.terminal();
  EXPECT_EQ(done.kind, MOAT_EVENT_DONE);
  EXPECT_EQ(done.usage.prompt_tokens, 3u + 2u + 2u + 3u);  // words of every message
  EXPECT_EQ(done.usage.completion_tokens, 3u);
  EXPECT_EQ(rec.terminals(), 1);
}

// Each delta's token is its word's vocabulary id, the one /tokenize gives: words seen before
// (in an earlier answer) and new ones alike, with leading whitespace and whitespace runs kept
// in the pieces; a whitespace-only answer is one piece and no word.
TEST_F(EchoChat, DeltaTokensAreTheWordsVocabularyIds) {
  moat_backend* b = create("{}");
  ASSERT_NE(b, nullptr);
  const std::string text = "\t to be  or not\nto be ";
  const std::vector<std::string> pieces = {"\t to ", "be  ", "or ", "not\n", "to ", "be "};
  for (uint64_t id : {1u, 2u}) {  // the second time every word is known
    request_builder req(MOAT_REQUEST_CHAT, id);
    req.message("user", text);
    recorder rec;
    ASSERT_EQ(submit(b, req, rec), MOAT_OK);
    ASSERT_TRUE(rec.wait_terminal());
    const auto deltas = of_kind(rec.events(), MOAT_EVENT_DELTA);
    ASSERT_EQ(deltas.size(), pieces.size());
    std::vector<int32_t> expected;
    auto collect = [](void* user, const int32_t* t, size_t n) {
      static_cast<std::vector<int32_t>*>(user)->assign(t, t + n);
    };
    moat_tokenize_request tr{};
    tr.struct_size = sizeof tr;
    tr.text = moat_str{text.data(), text.size()};
    moat_error err{};
    err.struct_size = sizeof err;
    ASSERT_EQ(api_->tokenize(b, &tr, collect, &expected, &err), MOAT_OK);
    ASSERT_EQ(expected.size(), pieces.size());
    for (size_t k = 0; k < pieces.size(); ++k) {
      EXPECT_EQ(deltas[k].text, pieces[k]) << k;
      ASSERT_EQ(deltas[k].tokens.size(), 1u) << k;
      EXPECT_EQ(deltas[k].tokens[0], expected[k]) << k;
    }
    EXPECT_EQ(deltas[0].tokens[0], deltas[4].tokens[0]);  // "to"
    EXPECT_EQ(rec.terminal().usage.completion_tokens, 6u);
  }
  request_builder blank(MOAT_REQUEST_CHAT, 3);
  blank.message("user", "  \n ");
  recorder rec;
  ASSERT_EQ(submit(b, blank, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  const auto deltas = of_kind(rec.events(), MOAT_EVENT_DELTA);
  ASSERT_EQ(deltas.size(), 1u);
  EXPECT_EQ(deltas[0].text, "  \n ");
  EXPECT_EQ(deltas[0].tokens.size(), 1u);
  EXPECT_EQ(rec.terminal().usage.completion_tokens, 0u);
}

TEST_F(EchoChat, ChunkCharsNeverSplitsACharacter) {
  moat_backend* b = create(R"({"chunk_chars":3})");
  ASSERT_NE(b, nullptr);
  const std::string text = "h\xC3\xA9llo w\xC3\xB6rld \xE2\x9C\x93\xF0\x9F\x98\x80!";
  request_builder req(MOAT_REQUEST_CHAT, 2);
  req.message("user", text);
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  const auto deltas = of_kind(rec.events(), MOAT_EVENT_DELTA);
  ASSERT_EQ(deltas.size(), 5u);  // 15 characters in chunks of 3
  size_t tokens = 0;
  for (const auto& d : deltas) {
    EXPECT_TRUE(valid_utf8(d.text)) << d.text;
    tokens += d.tokens.size();
  }
  EXPECT_EQ(deltas[0].text, "h\xC3\xA9l");
  EXPECT_EQ(rec.text_of(0), text);
  EXPECT_EQ(tokens, 3u);  // every word's token reported exactly once
}

TEST_F(EchoChat, MaxTokensCutsInWords) {
  moat_backend* b = create("{}");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_CHAT, 3);
  req.message("user", "one two three four");
  req.request.sampling.max_tokens = 2;
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  EXPECT_EQ(rec.text_of(0), "one two ");
  EXPECT_EQ(of_kind(rec.events(), MOAT_EVENT_FINISH).at(0).finish, MOAT_FINISH_LENGTH);
  EXPECT_EQ(rec.terminal().usage.completion_tokens, 2u);

  request_builder exact(MOAT_REQUEST_CHAT, 4);
  exact.message("user", "one two");
  exact.request.sampling.max_tokens = 2;
  recorder rec2;
  ASSERT_EQ(submit(b, exact, rec2), MOAT_OK);
  ASSERT_TRUE(rec2.wait_terminal());
  EXPECT_EQ(rec2.text_of(0), "one two");
  EXPECT_EQ(of_kind(rec2.events(), MOAT_EVENT_FINISH).at(0).finish, MOAT_FINISH_STOP);
}

TEST_F(EchoChat, StopStringsEndTheAnswerBeforeTheStop) {
  moat_backend* b = create("{}");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_CHAT, 5);
  req.message("user", "alpha beta END gamma").stop("zzz").stop("END");
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  EXPECT_EQ(rec.text_of(0), "alpha beta ");
  EXPECT_EQ(of_kind(rec.events(), MOAT_EVENT_FINISH).at(0).finish, MOAT_FINISH_STOP);
  EXPECT_EQ(rec.terminal().usage.completion_tokens, 2u);

  // A stop beyond max_tokens is never reached: the length limit wins.
  request_builder late(MOAT_REQUEST_CHAT, 6);
  late.message("user", "a b c END").stop("END");
  late.request.sampling.max_tokens = 2;
  recorder rec2;
  ASSERT_EQ(submit(b, late, rec2), MOAT_OK);
  ASSERT_TRUE(rec2.wait_terminal());
  EXPECT_EQ(rec2.text_of(0), "a b ");
  EXPECT_EQ(of_kind(rec2.events(), MOAT_EVENT_FINISH).at(0).finish, MOAT_FINISH_LENGTH);
}

TEST_F(EchoChat, LogprobsAreCertain) {
  moat_backend* b = create("{}");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_CHAT, 7);
  req.message("user", "x y");
  req.request.sampling.logprobs = 3;
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  const auto deltas = of_kind(rec.events(), MOAT_EVENT_DELTA);
  ASSERT_EQ(deltas.size(), 2u);
  for (const auto& d : deltas) {
    ASSERT_EQ(d.chosen.size(), 1u);
    EXPECT_EQ(d.chosen[0].logprob, 0.0f);
    EXPECT_EQ(d.chosen[0].token, d.tokens[0]);
    EXPECT_EQ(d.chosen_text[0], d.text);
    EXPECT_EQ(d.top_counts[0], 1u);
    EXPECT_TRUE(d.top_matches_chosen[0]);
  }
  request_builder zero(MOAT_REQUEST_CHAT, 8);
  zero.message("user", "x");
  zero.request.sampling.logprobs = 0;
  recorder rec0;
  ASSERT_EQ(submit(b, zero, rec0), MOAT_OK);
  ASSERT_TRUE(rec0.wait_terminal());
  const auto d0 = of_kind(rec0.events(), MOAT_EVENT_DELTA);
  ASSERT_EQ(d0.size(), 1u);
  ASSERT_EQ(d0[0].chosen.size(), 1u);
  EXPECT_EQ(d0[0].top_counts[0], 0u);
}

TEST_F(EchoChat, NoUserMessageAnswersEmpty) {
  moat_backend* b = create("{}");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_CHAT, 9);
  req.message("system", "only a system prompt");
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  EXPECT_TRUE(of_kind(rec.events(), MOAT_EVENT_DELTA).empty());
  EXPECT_EQ(of_kind(rec.events(), MOAT_EVENT_FINISH).size(), 1u);
  EXPECT_EQ(rec.terminal().kind, MOAT_EVENT_DONE);
  EXPECT_EQ(rec.terminal().usage.prompt_tokens, 4u);
}

TEST_F(EchoChat, ContextLimitRejectsAtSubmit) {
  moat_backend* b = create(R"({"max_context":3})");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_CHAT, 10);
  req.message("system", "a b").message("user", "c d");
  recorder rec;
  moat_error err{};
  EXPECT_EQ(submit(b, req, rec, &err), MOAT_ERR_CONTEXT_LENGTH);
  EXPECT_NE(std::string(err.message).find("maximum context length is 3"), std::string::npos);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(rec.events().empty());  // no event after a refused submit
}

TEST_F(EchoChat, MalformedRequestsAreRefusedWithoutEvents) {
  moat_backend* b = create("{}");
  ASSERT_NE(b, nullptr);
  request_builder truncated(MOAT_REQUEST_CHAT, 11);
  truncated.message("user", "x");
  truncated.request.struct_size = 8;  // a host far older than the fields echo reads
  recorder rec;
  moat_error err{};
  EXPECT_EQ(submit(b, truncated, rec, &err), MOAT_ERR_INVALID_ARGUMENT);
  request_builder empty(MOAT_REQUEST_CHAT, 12);  // a chat without messages
  EXPECT_EQ(submit(b, empty, rec, &err), MOAT_ERR_INVALID_ARGUMENT);
  request_builder no_prompt(MOAT_REQUEST_COMPLETION, 13);
  EXPECT_EQ(submit(b, no_prompt, rec, &err), MOAT_ERR_INVALID_ARGUMENT);
  request_builder odd_kind(static_cast<moat_request_kind>(0), 14);
  odd_kind.prompt("x");
  EXPECT_EQ(submit(b, odd_kind, rec, &err), MOAT_ERR_UNSUPPORTED);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(rec.events().empty());
}

using EchoCompletion = echo_fixture;

TEST_F(EchoCompletion, PromptsTimesNChoicesWithIndices) {
  moat_backend* b = create("{}");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_COMPLETION, 20);
  req.prompt("red green").prompt("blue");
  req.request.sampling.n = 3;
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(rec.text_of(i), "red green") << i;
  for (uint32_t i = 3; i < 6; ++i) EXPECT_EQ(rec.text_of(i), "blue") << i;
  EXPECT_EQ(of_kind(rec.events(), MOAT_EVENT_FINISH).size(), 6u);
  EXPECT_EQ(rec.terminal().usage.prompt_tokens, 3u);
  EXPECT_EQ(rec.terminal().usage.completion_tokens, 9u);
}

TEST_F(EchoCompletion, TokenPromptsAreTheIdsJoinedBySpaces) {
  moat_backend* b = create("{}");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_COMPLETION, 21);
  req.token_prompt({5, 17, 0});
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  EXPECT_EQ(rec.text_of(0), "5 17 0");
  EXPECT_EQ(rec.terminal().usage.prompt_tokens, 3u);
}

TEST_F(EchoCompletion, EchoPrependsThePrompt) {
  moat_backend* b = create("{}");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_COMPLETION, 22);
  req.prompt("say this ");
  req.request.echo = 1;
  req.request.sampling.max_tokens = 1;
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  EXPECT_EQ(rec.text_of(0), "say this say ");
  EXPECT_EQ(rec.terminal().usage.completion_tokens, 1u);
}

using EchoEmbeddings = echo_fixture;

std::vector<std::vector<float>> embed(const moat_backend_api* api, moat_backend* b,
                                      request_builder& req, uint64_t id) {
  req.request.request_id = id;
  recorder rec;
  moat_error err{};
  err.struct_size = sizeof err;
  EXPECT_EQ(api->submit(b, req.get(), recorder::on_event, &rec, &err), MOAT_OK) << err.message;
  EXPECT_TRUE(rec.wait_terminal());
  std::vector<std::vector<float>> vectors;
  for (const auto& e : rec.events()) {
    if (e.kind != MOAT_EVENT_EMBEDDING) continue;
    EXPECT_EQ(e.index, vectors.size());
    vectors.push_back(e.embedding);
  }
  EXPECT_EQ(rec.terminal().kind, MOAT_EVENT_DONE);
  return vectors;
}

TEST_F(EchoEmbeddings, UnitVectorsDeterministicPerText) {
  moat_backend* b = create("{}");
  moat_backend* other = create(R"({"workers":1})");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_EMBEDDING, 0);
  req.prompt("the cat").prompt("the dog").prompt("the cat").token_prompt({1, 2});
  const auto v = embed(api_, b, req, 30);
  ASSERT_EQ(v.size(), 4u);
  for (const auto& vec : v) {
    ASSERT_EQ(vec.size(), 64u);
    double norm = 0;
    for (float x : vec) norm += double(x) * x;
    EXPECT_NEAR(std::sqrt(norm), 1.0, 1e-5);
  }
  EXPECT_EQ(v[0], v[2]);   // same text, same vector
  EXPECT_NE(v[0], v[1]);   // different text, different vector
  EXPECT_EQ(embed(api_, other, req, 31), v);  // and the same in another instance

  request_builder joined(MOAT_REQUEST_EMBEDDING, 0);
  joined.prompt("1 2");
  EXPECT_EQ(embed(api_, b, joined, 32).at(0), v[3]);  // token prompts embed as their ids' text

  moat_backend* small = create(R"({"embedding_dim":7})");
  request_builder one(MOAT_REQUEST_EMBEDDING, 0);
  one.prompt("x");
  EXPECT_EQ(embed(api_, small, one, 33).at(0).size(), 7u);
}

using EchoTokenize = echo_fixture;

TEST_F(EchoTokenize, WordsRoundTripAndUnknownIdsFail) {
  moat_backend* b = create("{}");
  ASSERT_NE(b, nullptr);
  std::vector<int32_t> tokens;
  auto collect = [](void* user, const int32_t* t, size_t n) {
    static_cast<std::vector<int32_t>*>(user)->assign(t, t + n);
  };
  moat_tokenize_request tr{};
  tr.struct_size = sizeof tr;
  const std::string text = " to be  or not to be ";
  tr.text = moat_str{text.data(), text.size()};
  moat_error err{};
  err.struct_size = sizeof err;
  ASSERT_EQ(api_->tokenize(b, &tr, collect, &tokens, &err), MOAT_OK);
  ASSERT_EQ(tokens.size(), 6u);
  EXPECT_EQ(tokens[0], tokens[4]);  // "to"
  EXPECT_EQ(tokens[1], tokens[5]);  // "be"
  EXPECT_NE(tokens[0], tokens[1]);

  std::string back;
  auto collect_text = [](void* user, moat_str t) {
    static_cast<std::string*>(user)->assign(t.data, t.size);
  };
  ASSERT_EQ(api_->detokenize(b, tokens.data(), tokens.size(), collect_text, &back, &err), MOAT_OK);
  EXPECT_EQ(back, "to be or not to be");

  const int32_t unknown[] = {tokens[0], 999999};
  EXPECT_EQ(api_->detokenize(b, unknown, 2, collect_text, &back, &err), MOAT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("999999"), std::string::npos);

  // Messages: the words of every message, in order; usage of a chat counts the same.
  moat_message msgs[2]{};
  msgs[0].struct_size = msgs[1].struct_size = sizeof(moat_message);
  msgs[0].role = moat_str{"system", 6};
  msgs[0].content = moat_str{"not", 3};
  msgs[1].role = moat_str{"user", 4};
  msgs[1].content = moat_str{"to be", 5};
  moat_tokenize_request chat{};
  chat.struct_size = sizeof chat;
  chat.messages = msgs;
  chat.message_count = 2;
  ASSERT_EQ(api_->tokenize(b, &chat, collect, &tokens, &err), MOAT_OK);
  ASSERT_EQ(tokens.size(), 3u);
  ASSERT_EQ(api_->detokenize(b, tokens.data(), tokens.size(), collect_text, &back, &err), MOAT_OK);
  EXPECT_EQ(back, "not to be");
}

TEST_F(EchoTokenize, DeltaTokensMatchTokenize) {
  moat_backend* b = create("{}");
  ASSERT_NE(b, nullptr);
  request_builder req(MOAT_REQUEST_CHAT, 40);
  req.message("user", "tick tock");
  recorder rec;
  ASSERT_EQ(submit(b, req, rec), MOAT_OK);
  ASSERT_TRUE(rec.wait_terminal());
  std::vector<int32_t> streamed;
  for (const auto& d : of_kind(rec.events(), MOAT_EVENT_DELTA)) {
    streamed.insert(streamed.end(), d.tokens.begin(), d.tokens.end());
  }
  std::vector<int32_t> tokens;
  moat_tokenize_request tr{};
  tr.struct_size = sizeof tr;
  tr.text = moat_str{"tick tock", 9};
  moat_error err{};
  ASSERT_EQ(api_->tokenize(
                b, &tr,
                [](void* u, const int32_t* t, size_t n) {
                  static_cast<std::vector<int32_t>*>(u)->assign(t, t + n);
                },
                &tokens, &err),
            MOAT_OK);
  EXPECT_EQ(streamed, tokens);
}

}  // namespace
}  // namespace moat::echo::testing

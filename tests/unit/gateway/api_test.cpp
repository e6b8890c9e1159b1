// The OpenAI routes end to end in one process: the real server on port 0, the route table, the
// plugin host and the fake plugin, driven by a Beast client. Asserts exact statuses and error
// types, streams (including one that fails mid-way), and the route table's 404/405.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <thread>

#include "api/api.h"
#include "api/cache_salt.h"
#include "api/errors.h"
#include "api/generation.h"
#include "host/request_builder.h"
#include "http/server.h"

namespace {

namespace net = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using namespace moat;

const std::filesystem::path fake_path = std::filesystem::path(FAKE_PLUGIN_DIR) / "libmoat_fake.so";

class api_fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(fake_path)) GTEST_SKIP() << "fake plugin not built: " << fake_path;
    const std::string p = fake_path.string();
    cfg_ = config::parse_config("server: { request_timeout_s: 5 }\nmodels:\n"
                                "  - { name: ok, backend: fake, plugin: " + p + " }\n"
                                "  - { name: failsub, backend: fake, plugin: " + p + ", options: { fail_submit: 1 } }\n"
                                "  - { name: busy, backend: fake, plugin: " + p + ", options: { busy: 1 } }\n"
                                "  - { name: mid, backend: fake, plugin: " + p + ", options: { fail_mid: 1 } }\n",
                                "/tmp/api_test.yaml");
    registry_ = std::make_unique<metrics::registry>(std::vector<std::string>{"ok", "failsub", "busy", "mid"}, "9.9.9",
                                                    "c0ffee");
    host_ = std::make_unique<host::plugin_host>(cfg_, "/nonexistent", *registry_);
    ctx_ = std::make_unique<api::api_context>(api::api_context{*host_, *registry_, [this] { return server_->state(); }});
    ctx_->system_fingerprint = "fp_moat_9.9.9";
    routes_ = std::make_unique<api::route_table>(*ctx_);
    server_ = std::make_unique<http::server>(cfg_.server, *routes_, *registry_);
    port_ = server_->listen("127.0.0.1", 0).port;
    thread_ = std::thread([this] { server_->run(2); });
  }
  void load() {
    host_->load_all();
    server_->set_state(http::lifecycle::ready);
  }
  void TearDown() override {
    if (!server_) return;
    server_->stop();
    thread_.join();
    host_->shutdown();
  }

  bhttp::response<bhttp::string_body> call(const std::string& method, const std::string& target,
                                           const std::string& body = "") {
    if (!socket_.is_open()) socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_));
    bhttp::request<bhttp::string_body> req(method == "GET" ? bhttp::verb::get : bhttp::verb::post, target, 11);
    req.set(bhttp::field::host, "x");
    if (method != "GET") {
      req.set(bhttp::field::content_type, "application/json");
      req.body() = body;
      req.prepare_payload();
    }
    bhttp::write(socket_, req);
    bhttp::response<bhttp::string_body> res;
    bhttp::read(socket_, buffer_, res);
    return res;
  }

  config::config cfg_;
  std::unique_ptr<metrics::registry> registry_;
  std::unique_ptr<host::plugin_host> host_;
  std::unique_ptr<api::api_context> ctx_;
  std::unique_ptr<api::route_table> routes_;
  std::unique_ptr<http::server> server_;
  uint16_t port_ = 0;
  std::thread thread_;
  net::io_context client_io_;
  tcp::socket socket_{client_io_};
  boost::beast::flat_buffer buffer_;
};

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

size_t count(const std::string& s, const std::string& part) {
  size_t n = 0;
  for (size_t at = s.find(part); at != std::string::npos; at = s.find(part, at + 1)) ++n;
  return n;
}

// The streamed text: every "content":"..." value in order (deltas may be coalesced when the
// backend outruns the connection, so only the concatenation is fixed). No escapes in tests.
std::string streamed_text(const std::string& sse) {
  std::string out;
  const std::string key = R"("content":")";
  for (size_t at = sse.find(key); at != std::string::npos; at = sse.find(key, at + 1)) {
    const size_t begin = at + key.size();
    out += sse.substr(begin, sse.find('"', begin) - begin);
  }
  return out;
}

TEST_F(api_fixture, health_is_503_until_loaded_then_200) {
  auto r = call("GET", "/health");
  EXPECT_EQ(r.result_int(), 503);
  EXPECT_EQ(r.body(), R"({"status":"loading"})");
  EXPECT_EQ(call("POST", "/v1/chat/completions", R"({"model":"ok","messages":[{"role":"user","content":"x"}]})")
                .result_int(),
            503);
  load();
  r = call("GET", "/health");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r.body(), R"({"status":"ok"})");
}

TEST_F(api_fixture, models_list_and_lookup) {
  load();
  auto r = call("GET", "/v1/models");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_TRUE(contains(r.body(), R"("id":"ok")")) << r.body();
  EXPECT_TRUE(contains(r.body(), R"("owned_by":"fake")")) << r.body();
  EXPECT_EQ(call("GET", "/v1/models/ok").result_int(), 200);
  r = call("GET", "/v1/models/nope");
  EXPECT_EQ(r.result_int(), 404);
  EXPECT_TRUE(contains(r.body(), R"("code":"model_not_found")")) << r.body();
}

TEST_F(api_fixture, chat_completion_whole_and_streamed) {
  load();
  auto r = call("POST", "/v1/chat/completions", R"({"model":"ok","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(r.result_int(), 200) << r.body();
  EXPECT_TRUE(contains(r.body(), R"("id":"chatcmpl-)"));
  EXPECT_TRUE(contains(r.body(), R"("content":"hello world")")) << r.body();
  EXPECT_TRUE(contains(r.body(), R"("system_fingerprint":"fp_moat_9.9.9")"));
  EXPECT_TRUE(contains(r.body(), R"("finish_reason":"stop")"));

  r = call("POST", "/v1/chat/completions",
           R"({"model":"ok","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(r.result_int(), 200);
  EXPECT_EQ(r[bhttp::field::content_type], "text/event-stream");
  const std::string& s = r.body();
  EXPECT_EQ(count(s, R"("delta":{"role":"assistant","content":"hello)"), 1u) << s;
  EXPECT_EQ(streamed_text(s), "hello world") << s;
  EXPECT_EQ(count(s, R"("finish_reason":"stop")"), 1u) << s;
  EXPECT_TRUE(contains(s, R"("choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2)")) << s;
  EXPECT_EQ(s.substr(s.size() - 14), "data: [DONE]\n\n");
}

TEST_F(api_fixture, completion_and_unsupported_token_prompts) {
  load();
  auto r = call("POST", "/v1/completions", R"({"model":"ok","prompt":"hi"})");
  ASSERT_EQ(r.result_int(), 200) << r.body();
  EXPECT_TRUE(contains(r.body(), R"("object":"text_completion")"));
  EXPECT_TRUE(contains(r.body(), R"("id":"cmpl-)"));
  r = call("POST", "/v1/completions", R"({"model":"ok","prompt":[1,2,3]})");
  EXPECT_EQ(r.result_int(), 400);
  EXPECT_TRUE(contains(r.body(), R"("param":"prompt")")) << r.body();
}

TEST_F(api_fixture, backend_errors_map_to_statuses) {
  load();
  auto r = call("POST", "/v1/chat/completions", R"({"model":"failsub","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.result_int(), 400);
  EXPECT_TRUE(contains(r.body(), R"("message":"fake refuses this request","type":"invalid_request_error")"))
      << r.body();
  r = call("POST", "/v1/chat/completions", R"({"model":"busy","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.result_int(), 429);
  EXPECT_EQ(r["Retry-After"], "1");
  r = call("POST", "/v1/chat/completions", R"({"model":"mid","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.result_int(), 500);
  EXPECT_TRUE(contains(r.body(), R"("type":"server_error")"));
  r = call("POST", "/v1/chat/completions", R"({"model":"ok","messages":"nope"})");
  EXPECT_EQ(r.result_int(), 400);
  EXPECT_TRUE(contains(r.body(), R"("param":"messages")")) << r.body();
  r = call("POST", "/v1/chat/completions", "{not json");
  EXPECT_EQ(r.result_int(), 400);
}

TEST_F(api_fixture, stream_failing_midway_ends_with_error_event_and_connection_survives) {
  load();
  auto r = call("POST", "/v1/chat/completions",
                R"({"model":"mid","stream":true,"messages":[{"role":"user","content":"x"}]})");
  ASSERT_EQ(r.result_int(), 200);
  const std::string& s = r.body();
  EXPECT_TRUE(contains(s, R"("content":"hello")")) << s;
  EXPECT_TRUE(contains(s, "data: {\"error\":{\"message\":\"fake broke mid-stream\",\"type\":\"server_error\"")) << s;
  EXPECT_EQ(s.substr(s.size() - 14), "data: [DONE]\n\n");
  // Same connection, next request.
  EXPECT_EQ(call("GET", "/health").result_int(), 200);
}

TEST_F(api_fixture, embeddings_and_dimensions) {
  load();
  auto r = call("POST", "/v1/embeddings", R"({"model":"ok","input":["a","b"]})");
  ASSERT_EQ(r.result_int(), 200) << r.body();
  EXPECT_TRUE(contains(r.body(), R"("index":1)")) << r.body();
  r = call("POST", "/v1/embeddings", R"({"model":"ok","input":"a","dimensions":7})");
  EXPECT_EQ(r.result_int(), 400);
  EXPECT_TRUE(contains(r.body(), R"("param":"dimensions")")) << r.body();
}

TEST_F(api_fixture, tokenize_and_detokenize) {
  load();
  auto r = call("POST", "/tokenize", R"({"model":"ok","prompt":"AB"})");
  ASSERT_EQ(r.result_int(), 200) << r.body();
  EXPECT_TRUE(contains(r.body(), "[65,66]")) << r.body();
  r = call("POST", "/detokenize", R"({"model":"ok","tokens":[72,105]})");
  ASSERT_EQ(r.result_int(), 200) << r.body();
  EXPECT_TRUE(contains(r.body(), R"("Hi")")) << r.body();
  r = call("POST", "/detokenize", R"({"model":"ok","tokens":[9999]})");
  EXPECT_EQ(r.result_int(), 400);
}

TEST_F(api_fixture, route_table_404_and_405) {
  load();
  auto r = call("GET", "/v1/nothing");
  EXPECT_EQ(r.result_int(), 404);
  EXPECT_TRUE(contains(r.body(), R"("type":"invalid_request_error")"));
  r = call("GET", "/v1/chat/completions");
  EXPECT_EQ(r.result_int(), 405);
  EXPECT_EQ(r["Allow"], "POST");
  r = call("POST", "/health");
  EXPECT_EQ(r.result_int(), 405);
  EXPECT_EQ(r["Allow"], "GET, HEAD");
  EXPECT_EQ(call("GET", "/v1/models/").result_int(), 200);  // trailing slash tolerated
}

TEST_F(api_fixture, metrics_count_what_happened) {
  load();
  call("POST", "/v1/chat/completions", R"({"model":"ok","messages":[{"role":"user","content":"hi"}]})");
  call("GET", "/v1/nothing");
  auto r = call("GET", "/metrics");
  ASSERT_EQ(r.result_int(), 200);
  EXPECT_EQ(r[bhttp::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_TRUE(contains(r.body(), "moat_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 1"));
  EXPECT_TRUE(contains(r.body(), "moat_http_requests_total{route=\"unknown\",status=\"404\"} 1"));
  EXPECT_TRUE(contains(r.body(), "moat:generation_tokens_total{model_name=\"ok\"} 2"));
  EXPECT_TRUE(contains(r.body(), "moat_build_info{version=\"9.9.9\",commit=\"c0ffee\"} 1"));
}

host::owned_event delta(uint32_t index, std::string text) {
  host::owned_event ev;
  ev.kind = MOAT_EVENT_DELTA;
  ev.index = index;
  ev.text = std::move(text);
  return ev;
}

TEST(generation_job, keeps_deltas_while_the_client_keeps_up_and_coalesces_when_behind) {
  metrics::registry reg({"m"}, "v", "c");
  api::generation_options opts;
  opts.stream = true;
  opts.meta = {"chatcmpl-x", 1, "m", "fp"};
  std::shared_ptr<http::stream_source> source;
  int status = 0;
  auto job = std::make_shared<api::generation_job>(opts, [&](http::response res) {
    status = res.status;
    source = res.stream;
  }, reg);
  std::string got;
  bool last = false;
  int deliveries = 0;
  // True when the pull was answered at once (else the job keeps it for the next event).
  auto pull = [&] {
    const int before = deliveries;
    source->pull([&got, &last, &deliveries](std::string data, bool l) {
      got += data;
      last = l;
      ++deliveries;
    });
    return deliveries > before;
  };

  // The first event starts the stream (status 200, the job is the source).
  job->on_event(delta(0, "a"));
  ASSERT_EQ(status, 200);
  ASSERT_EQ(source, job);
  ASSERT_TRUE(pull());
  EXPECT_FALSE(pull());          // nothing new: the pull waits
  job->on_event(delta(0, "b"));  // ... and gets the next event as its own chunk
  EXPECT_EQ(streamed_text(got), "ab");
  job->on_event(delta(0, "c"));  // no pull waiting: kept until the next one
  EXPECT_TRUE(pull());
  EXPECT_EQ(count(got, "data: "), 3u);
  EXPECT_EQ(streamed_text(got), "abc");

  // A client that does not pull: after coalesce_after_bytes of chunks, text is coalesced.
  std::string expected = "abc";
  for (int i = 0; i < 20000; ++i) {
    job->on_event(delta(0, "0123456789"));
    expected += "0123456789";
  }
  host::owned_event fin;
  fin.kind = MOAT_EVENT_FINISH;
  fin.finish_reason = MOAT_FINISH_LENGTH;
  job->on_event(std::move(fin));
  host::owned_event done;
  done.kind = MOAT_EVENT_DONE;
  job->on_event(std::move(done));
  EXPECT_TRUE(pull());
  EXPECT_TRUE(last);
  EXPECT_EQ(streamed_text(got), expected);
  EXPECT_LT(count(got, "data: "), 20000u / 2);  // far fewer chunks than events
  EXPECT_EQ(count(got, R"("finish_reason":"length")"), 1u);
  EXPECT_EQ(got.substr(got.size() - 14), "data: [DONE]\n\n");
}

// A stream whose client keeps up: each event is its own chunk, byte for byte what the chunk
// serializers make of it, whichever way the job writes it (the plain delta of choice 0 takes a
// shorter path than a role, a second choice, a finish or logprobs).
TEST(generation_job, streamed_events_are_the_serialized_chunks_byte_for_byte) {
  metrics::registry reg({"m"}, "v", "c");
  for (const bool chat : {true, false}) {
    for (const bool usage : {false, true}) {
      api::generation_options opts;
      opts.chat = chat;
      opts.stream = true;
      opts.include_usage = usage;
      opts.choices = 2;
      opts.meta = {chat ? "chatcmpl-x" : "cmpl-x", 1700000000, "m", "fp_1"};
      std::shared_ptr<http::stream_source> source;
      auto job = std::make_shared<api::generation_job>(
          opts, [&](http::response res) { source = res.stream; }, reg);
      std::string got;
      bool last = false;
      auto pull = [&] {
        source->pull([&](std::string data, bool l) {
          got += data;
          last = l;
        });
      };

      std::string want;
      bool started[2] = {false, false};
      auto expect_delta = [&](uint32_t index, std::string_view text, std::string_view finish = {}) {
        openai::chunk_delta d;
        d.index = index;
        d.first = !started[index];
        started[index] = true;
        d.text = text;
        d.finish_reason = finish;
        want += openai::sse_data(chat ? openai::chat_chunk_json(opts.meta, d, usage)
                                      : openai::completion_chunk_json(opts.meta, d, usage));
      };
      const std::pair<uint32_t, std::string> events[] = {{0, "Hello"},
                                                         {0, " world"},
                                                         {1, "other"},
                                                         {0, ", a longer word,"},
                                                         {0, " \"quoted\"\n"},
                                                         {0, " caf\xc3\xa9 \xff"},
                                                         {1, " more"},
                                                         {0, "0123456789abcdefghij"},
                                                         {0, ""}};
      for (const auto& [index, text] : events) {
        job->on_event(delta(index, text));
        if (!source) FAIL() << "the first event starts the stream";
        pull();
        expect_delta(index, text);
      }
      for (uint32_t index : {1u, 0u}) {
        host::owned_event fin;
        fin.kind = MOAT_EVENT_FINISH;
        fin.index = index;
        fin.finish_reason = index == 0 ? MOAT_FINISH_STOP : MOAT_FINISH_LENGTH;
        job->on_event(std::move(fin));
        pull();
        expect_delta(index, "", index == 0 ? "stop" : "length");
      }
      host::owned_event done;
      done.kind = MOAT_EVENT_DONE;
      done.usage.prompt_tokens = 3;
      done.usage.completion_tokens = 9;
      job->on_event(std::move(done));
      pull();
      if (usage) {
        want += openai::sse_data(chat ? openai::chat_usage_chunk_json(opts.meta, {3, 9})
                                      : openai::completion_usage_chunk_json(opts.meta, {3, 9}));
      }
      want += openai::sse_done;
      EXPECT_TRUE(last);
      EXPECT_EQ(got, want) << "chat " << chat << " usage " << usage;
    }
  }
}

TEST(generation_job, error_before_any_text_is_an_http_error) {
  metrics::registry reg({"m"}, "v", "c");
  api::generation_options opts;
  opts.stream = true;
  http::response got;
  auto job = std::make_shared<api::generation_job>(opts, [&](http::response res) { got = std::move(res); }, reg);
  host::owned_event err;
  err.kind = MOAT_EVENT_ERROR;
  err.error_code = MOAT_ERR_UPSTREAM;
  err.error_message = "upstream said no";
  job->on_event(std::move(err));
  EXPECT_EQ(got.status, 502);
  EXPECT_EQ(got.stream, nullptr);
  EXPECT_TRUE(contains(got.body, "upstream said no"));
}

// The job copies its identity (id, model, fingerprint, x-request-id) from views that live only
// as long as its constructor: the answer shows the text they had then, whether it fits in the
// job's inline storage or not.
TEST(generation_job, keeps_its_own_copy_of_the_response_identity) {
  metrics::registry reg({"m"}, "v", "c");
  for (const size_t model_size : {size_t{1}, size_t{40}, size_t{300}}) {
    for (const bool stream : {false, true}) {
      std::string id = "chatcmpl-abcdefghijklmnopqrstuvwx";
      std::string model(model_size, 'm');
      std::string fingerprint = "fp_moat_1.2.3";
      std::string request_id(100, 'r');
      api::generation_options opts;
      opts.stream = stream;
      opts.meta = {id, 1700000000, model, fingerprint};
      opts.request_id = request_id;
      http::response got;
      auto job = std::make_shared<api::generation_job>(
          opts, [&](http::response res) { got = std::move(res); }, reg);
      const std::string want = R"({"id":")" + id + R"(","object":")" +
                               (stream ? "chat.completion.chunk" : "chat.completion") +
                               R"(","created":1700000000,"model":")" + model +
                               R"(","system_fingerprint":"fp_moat_1.2.3",)";
      for (std::string* s : {&id, &model, &fingerprint, &request_id})
        std::fill(s->begin(), s->end(), 'X');
      id.clear();
      id.shrink_to_fit();
      model = "other";
      job->on_event(delta(0, "hi"));
      host::owned_event finish;
      finish.kind = MOAT_EVENT_FINISH;
      job->on_event(std::move(finish));
      host::owned_event done;
      done.kind = MOAT_EVENT_DONE;
      job->on_event(std::move(done));
      std::string body = got.body;
      if (stream) {
        ASSERT_NE(got.stream, nullptr);
        got.stream->pull([&](std::string data, bool) { body = std::move(data); });
      }
      EXPECT_TRUE(contains(body, want)) << model_size << " " << stream << "\n" << body;
      EXPECT_FALSE(contains(body, "XX")) << body;
    }
  }
}

TEST(errors, every_status_maps_to_the_documented_http_status) {
  struct row {
    moat_status status;
    int http;
    const char* type;
  };
  const row rows[] = {
      {MOAT_ERR_INVALID_ARGUMENT, 400, "invalid_request_error"},
      {MOAT_ERR_UNSUPPORTED, 400, "invalid_request_error"},
      {MOAT_ERR_CONTEXT_LENGTH, 400, "invalid_request_error"},
      {MOAT_ERR_NOT_FOUND, 404, "not_found_error"},
      {MOAT_ERR_BUSY, 429, "rate_limit_error"},
      {MOAT_ERR_INTERNAL, 500, "server_error"},
      {MOAT_ERR_UPSTREAM, 502, "server_error"},
      {MOAT_ERR_UNAVAILABLE, 503, "server_error"},
      {MOAT_ERR_TIMEOUT, 504, "timeout_error"},
      {MOAT_ERR_CANCELLED, 500, "server_error"},
      {MOAT_ERR_IO, 500, "server_error"},
  };
  for (const auto& r : rows) {
    const auto e = api::backend_error(r.status, "m");
    EXPECT_EQ(e.status, r.http) << r.status;
    EXPECT_EQ(e.type, r.type) << r.status;
  }
  EXPECT_EQ(api::backend_error(MOAT_ERR_CONTEXT_LENGTH, "m").code, "context_length_exceeded");
  const auto nf = api::model_not_found("x");
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(nf.code, "model_not_found");
  metrics::registry reg({}, "v", "c");
  const auto res = api::error_response(reg, api::backend_error(MOAT_ERR_BUSY, "full"), metrics::route::completions);
  EXPECT_EQ(res.status, 429);
  ASSERT_EQ(res.headers.size(), 1u);
  EXPECT_EQ(res.headers[0].name, "Retry-After");
}

}  // namespace

// ---- cache_salt ------------------------------------------------------------------------------

TEST(cache_salt, derived_per_key_and_secret_and_stable) {
  const std::string secret = api::make_cache_salt_secret();
  EXPECT_EQ(secret.size(), 32u);
  EXPECT_NE(secret, api::make_cache_salt_secret());
  const auto a = api::derive_cache_salt(secret, "team-a", "");
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a, api::derive_cache_salt(secret, "team-a", ""));
  EXPECT_NE(a, api::derive_cache_salt(secret, "team-b", ""));
  EXPECT_NE(a, api::derive_cache_salt(secret, "team-a", "x"));
  EXPECT_NE(a, api::derive_cache_salt(api::make_cache_salt_secret(), "team-a", ""));
  // The separator keeps (key, client salt) pairs apart that would concatenate alike.
  EXPECT_NE(api::derive_cache_salt(secret, "ab", "c"), api::derive_cache_salt(secret, "a", "bc"));
}

TEST(cache_salt, with_string_field_replaces_or_appends_and_keeps_the_rest) {
  EXPECT_EQ(host::with_string_field(R"({"model":"m","cache_salt":"old","n":2})", "cache_salt", "new"),
            R"({"model":"m","cache_salt":"new","n":2})");
  EXPECT_EQ(host::with_string_field(R"({"model":"m", "messages":[{"role":"user","content":"a\"b"}]})", "cache_salt", "s"),
            R"({"model":"m","messages":[{"role":"user","content":"a\"b"}],"cache_salt":"s"})");
  EXPECT_EQ(host::with_string_field("not json", "cache_salt", "s"), R"({"cache_salt":"s"})");
  EXPECT_EQ(host::with_string_field(R"({"cache_salt":1,"cache_salt":2})", "cache_salt", "q\""), R"({"cache_salt":"q\""})");
}

TEST(generation_job, completion_stream_logprobs_text_offset_continues_across_chunks) {
  metrics::registry reg({"m"}, "v", "c");
  api::generation_options opts;
  opts.chat = false;
  opts.stream = true;
  opts.logprobs = true;
  opts.meta = {"cmpl-x", 1, "m", "fp"};
  std::shared_ptr<http::stream_source> source;
  auto job = std::make_shared<api::generation_job>(opts, [&](http::response res) { source = res.stream; }, reg);
  auto with_tokens = [](std::vector<std::string> tokens) {
    host::owned_event ev = delta(0, "");
    for (auto& t : tokens) {
      ev.text += t;
      openai::logprob_item item;
      item.chosen.token = t;
      ev.logprobs.push_back(std::move(item));
    }
    return ev;
  };
  std::string got;
  job->on_event(with_tokens({"Hel", "lo"}));
  ASSERT_NE(source, nullptr);
  source->pull([&](std::string data, bool) { got += data; });  // first chunk, pulled at once
  job->on_event(with_tokens({" wor", "ld"}));                  // second chunk, its own pull
  source->pull([&](std::string data, bool) { got += data; });
  job->on_event(with_tokens({"!"}));
  EXPECT_TRUE(contains(got, R"("text_offset":[0,3])")) << got;
  EXPECT_TRUE(contains(got, R"("text_offset":[5,9])")) << got;  // not [0,4]
  std::string third;
  source->pull([&](std::string data, bool) { third += data; });
  EXPECT_TRUE(contains(third, R"("text_offset":[11])")) << third;
}

// The HTTP layer alone, in process: a server on port 0 with a scripted handler, driven by a
// Beast client over loopback. Covers keep-alive, request ids, limits (400/413/431), streams,
// 100-continue, a client that leaves mid-request, the drain, and the read/idle timeouts with
// the deadline sweeper behind them.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <future>
#include <random>
#include <set>
#include <thread>

#include "http/deadlines.h"
#include "http/request_head.h"
#include "http/server.h"
#include "http/wire.h"
#include "server_fixture.h"

namespace {

namespace net = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using namespace moat;

// Yields "a", "b", "c" one pull at a time, each posted later onto the strand (as the host does).
class abc_stream : public http::stream_source {
 public:
  explicit abc_stream(net::any_io_executor strand) : strand_(std::move(strand)) {}
  void pull(next_fn next) override {
    const int i = i_++;
    net::post(strand_, [i, next = std::move(next)] {
      static const char* parts[] = {"a", "b", "c"};
      next(parts[i], i == 2);
    });
  }

 private:
  net::any_io_executor strand_;
  int i_ = 0;
};

// Has everything at once: ready() before the first pull, and each pull answers inline.
class ready_stream : public http::stream_source {
 public:
  bool ready() const override { return i_ < 2; }
  void pull(next_fn next) override {
    const int i = i_++;
    next(i == 0 ? "data: 1\n\n" : "data: 2\n\n", i == 1);
  }

 private:
  int i_ = 0;
};

class scripted_handler : public http::handler {
 public:
  void handle(const http::request& req, http::responder respond) override {
    last_request_id = std::string(req.request_id);
    if (req.path == "/echo") {
      http::response res;
      res.content_type = "text/plain";
      res.body = std::string(req.method) + " " + std::string(req.target) + " " +
                 std::string(req.body) + " " + std::string(req.header("X-Thing"));
      respond(std::move(res));
    } else if (req.path == "/stream") {
      http::response res;
      res.content_type = "text/event-stream";
      res.stream = std::make_shared<abc_stream>(req.strand);
      respond(std::move(res));
    } else if (req.path == "/ready-stream") {
      http::response res;
      res.content_type = "text/event-stream";
      res.stream = std::make_shared<ready_stream>();
      respond(std::move(res));
    } else if (req.path == "/hang") {
      // Never answers until the client leaves; then answers (as the host does after cancel).
      req.client->on_gone([this, respond] {
        gone.set_value();
        respond(http::response{});
      });
    } else if (req.path == "/slow" || req.path == "/slower") {
      const auto delay = std::chrono::milliseconds(req.path == "/slow" ? 300 : 2600);
      auto timer = std::make_shared<net::steady_timer>(req.strand, delay);
      timer->async_wait([timer, respond](boost::system::error_code) {
        http::response res;
        res.body = "slow";
        respond(std::move(res));
      });
    } else if (req.path == "/throw") {
      throw std::runtime_error("handler bug");
    } else {
      http::response res;
      res.status = 404;
      respond(std::move(res));
    }
  }
  std::string last_request_id;
  std::promise<void> gone;
};

class http_server : public moat::testing::server_fixture<scripted_handler> {
 protected:
  void SetUp() override {
    config::server_config limits;
    limits.max_body_bytes = 1024;
    limits.max_header_bytes = 1024;
    limits.read_timeout_s = 2;
    limits.idle_timeout_s = 2;
    start(limits, 2);
  }
  // Seconds until the server closes `s` (reads and drops whatever comes first); -1 after `limit`.
  static double seconds_until_closed(tcp::socket& s, double limit) {
    const auto start = std::chrono::steady_clock::now();
    s.non_blocking(true);
    char buf[512];
    for (;;) {
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (t > limit) return -1;
      boost::system::error_code ec;
      s.read_some(net::buffer(buf), ec);
      if (ec == net::error::would_block) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      if (ec) return t;  // eof or reset
    }
  }
};

TEST_F(http_server, keep_alive_and_request_ids) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "POST /echo?q=1 HTTP/1.1\r\nHost: x\r\nX-Thing: yes\r\nx-request-id: abc-123.X_y\r\n"
          "Content-Length: 5\r\n\r\nhello");
  auto r1 = read_response(s, buf);
  EXPECT_EQ(r1.result_int(), 200);
  EXPECT_EQ(r1.body(), "POST /echo?q=1 hello yes");
  EXPECT_EQ(r1["x-request-id"], "abc-123.X_y");
  EXPECT_EQ(r1["Content-Type"], "text/plain");
  EXPECT_TRUE(r1.keep_alive());

  // Same connection; an unsafe id is replaced by one the server makes.
  send(s, "GET /echo HTTP/1.1\r\nHost: x\r\nx-request-id: bad id<script>\r\n\r\n");
  auto r2 = read_response(s, buf);
  EXPECT_EQ(r2.result_int(), 200);
  const std::string made(r2["x-request-id"]);
  EXPECT_EQ(made.size(), 16u);
  EXPECT_TRUE(http::is_sane_request_id(made));
  EXPECT_EQ(handler_.last_request_id, made);

  send(s, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  auto r3 = read_response(s, buf);
  EXPECT_FALSE(r3.keep_alive());
}

TEST_F(http_server, pipelined_requests_are_answered_in_order) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "GET /echo?1 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo?2 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_response(s, buf).body(), "GET /echo?1  ");
  EXPECT_EQ(read_response(s, buf).body(), "GET /echo?2  ");
}

// Plain requests are read in place; the same request with its body still on the way, chunked, or
// in HTTP/1.0 goes through Beast: every form gets the same answer, and pipelined bodies stay apart.
TEST_F(http_server, plain_and_beast_parsed_requests_get_the_same_answers) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s,
       "POST /echo?1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
       "POST /echo?2 HTTP/1.1\r\nHost: x\r\ncontent-length:2 \r\nX-Thing:  t \r\n\r\nde");
  EXPECT_EQ(read_response(s, buf).body(), "POST /echo?1 abc ");
  EXPECT_EQ(read_response(s, buf).body(), "POST /echo?2 de t");

  send(s, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  send(s, "lo");
  EXPECT_EQ(read_response(s, buf).body(), "POST /echo hello ");

  send(s,
       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
       "chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n");
  EXPECT_EQ(read_response(s, buf).body(), "POST /echo hello ");

  send(
      s,
      "POST /echo HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello");
  auto old = read_response(s, buf);
  EXPECT_EQ(old.body(), "POST /echo hello ");
}

TEST(request_head, plain_form_is_read_and_everything_else_is_left_to_beast) {
  std::vector<http::header_view> fields;
  http::plain_head head;
  ASSERT_TRUE(http::parse_plain_head(
      "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a:1\r\nContent-Length:  12 \r\n"
      "Authorization: Bearer k\tey\r\nEmpty:\r\nConnection: Close\r\n\r\n",
      100, fields, head));
  EXPECT_EQ(head.method, "POST");
  EXPECT_EQ(head.target, "/v1/chat/completions?x=1");
  EXPECT_EQ(head.content_length, 12u);
  EXPECT_FALSE(head.keep_alive);
  ASSERT_EQ(fields.size(), 5u);
  EXPECT_EQ(fields[1].name, "Content-Length");
  EXPECT_EQ(fields[1].value, "12");
  EXPECT_EQ(fields[2].value, "Bearer k\tey");
  EXPECT_EQ(fields[3].value, "");

  ASSERT_TRUE(http::parse_plain_head("GET / HTTP/1.1\r\n\r\n", 100, fields, head));
  EXPECT_TRUE(head.keep_alive);
  EXPECT_EQ(head.content_length, 0u);
  EXPECT_TRUE(fields.empty());

  const char* not_plain[] = {
      "GET / HTTP/1.0\r\n\r\n",                    // another version
      "GET  / HTTP/1.1\r\n\r\n",                   // two spaces
      "GET / HTTP/1.1 \r\n\r\n",                   // trailing space
      "G(T / HTTP/1.1\r\n\r\n",                    // not a token
      "GET /\x7f HTTP/1.1\r\n\r\n",                // target byte
      "\r\nGET / HTTP/1.1\r\n\r\n",                // leading blank line
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",        // space before ':'
      "GET / HTTP/1.1\r\nHost x\r\n\r\n",          // no ':'
      "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n",  // obs-text
      "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",         // bare CR
      "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n",
      "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
      "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
      "GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\n",  // no blank line
  };
  for (const char* raw : not_plain)
    EXPECT_FALSE(http::parse_plain_head(raw, 100, fields, head)) << raw;
  EXPECT_FALSE(
      http::parse_plain_head("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 100, fields, head));

  // Values are checked 8 bytes at a time: a tab anywhere is fine, a DEL, control or non-ASCII
  // byte anywhere is not, whatever its offset within those words.
  for (size_t at = 0; at < 20; ++at) {
    for (const char odd : {'\t', '\x7f', '\x01', '\x80', '\xff'}) {
      std::string value(24, 'v');
      value[at] = odd;
      const std::string raw = "GET / HTTP/1.1\r\nX: " + value + "\r\n\r\n";
      EXPECT_EQ(http::parse_plain_head(raw, 100, fields, head), odd == '\t')
          << "byte " << static_cast<int>(static_cast<unsigned char>(odd)) << " at " << at;
    }
  }

  // Names, targets and values are scanned 16 bytes at a time: the byte that ends or breaks one is
  // found at every offset of a long run, and the token characters outside letters, digits and
  // '-' still pass in names.
  for (size_t at = 0; at < 40; ++at) {
    for (const char odd : {'^', '_', '~', '!', '@', '[', '{', ' ', '\x7f', '\x80', '\x01'}) {
      std::string name(44, 'N');
      name[at] = odd;
      const bool token = odd == '^' || odd == '_' || odd == '~' || odd == '!';
      EXPECT_EQ(http::parse_plain_head("GET / HTTP/1.1\r\n" + name + ": v\r\n\r\n", 100, fields, head), token)
          << "name byte " << static_cast<int>(static_cast<unsigned char>(odd)) << " at " << at;
      std::string target = "/" + std::string(43, 't');
      target[at + 1] = odd;
      const bool visible = odd != ' ' && odd != '\x7f' && odd != '\x80' && odd != '\x01';
      EXPECT_EQ(http::parse_plain_head("GET " + target + " HTTP/1.1\r\n\r\n", 100, fields, head), visible)
          << "target byte " << static_cast<int>(static_cast<unsigned char>(odd)) << " at " << at;
      std::string value(44, 'v');
      value[at] = odd;
      const bool plain = odd != '\x7f' && odd != '\x80' && odd != '\x01';
      EXPECT_EQ(http::parse_plain_head("GET / HTTP/1.1\r\nX-Long-Field-Name: " + value + "\r\n\r\n", 100, fields, head),
                plain)
          << "value byte " << static_cast<int>(static_cast<unsigned char>(odd)) << " at " << at;
    }
  }
  // The special fields are known in any case, and only by their exact name: a token byte that
  // case folding moves ('^' to '~', '_' to DEL) never turns a name into one of them.
  ASSERT_TRUE(http::parse_plain_head("GET / HTTP/1.1\r\ncOnTeNt-LeNgTh: 42\r\n\r\n", 100, fields, head));
  EXPECT_EQ(head.content_length, 42u);
  EXPECT_FALSE(http::parse_plain_head("GET / HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\n\r\n", 100, fields, head));
  EXPECT_FALSE(http::parse_plain_head("GET / HTTP/1.1\r\nHOST: a\r\nhost: b\r\n\r\n", 100, fields, head));
  ASSERT_TRUE(http::parse_plain_head("GET / HTTP/1.1\r\ncontent^length: 42\r\nTransfer_Encoding: x\r\n\r\n", 100,
                                     fields, head));
  EXPECT_EQ(head.content_length, 0u);
  ASSERT_TRUE(http::parse_plain_head("GET / HTTP/1.1\r\nConnection: CLOSE\r\n\r\n", 100, fields, head));
  EXPECT_FALSE(head.keep_alive);

  // The session skips auth::check_request_headers for plain heads: each accepted form passes it.
  const char* plain[] = {
      "POST /v1/chat/completions HTTP/1.1\r\nHost: a:1\r\nContent-Length: 12\r\nContent-Type: "
      "application/json\r\n"
      "Authorization: Bearer k\tey\r\nX-Empty:\r\nConnection: keep-alive\r\n\r\n",
      "GET /health HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09az: v a l u e ~\r\nContent-Length: 000\r\n\r\n",
  };
  for (const char* raw : plain) {
    ASSERT_TRUE(http::parse_plain_head(raw, 100, fields, head)) << raw;
    std::vector<auth::header_view> guard;
    for (const auto& f : fields) guard.push_back({f.name, f.value});
    const auto verdict = auth::check_request_headers(
        guard, {}, {.max_count = 100, .max_bytes = std::string_view(raw).size()});
    EXPECT_TRUE(verdict.ok) << raw << ": " << verdict.reason;
  }
  EXPECT_FALSE(http::parse_plain_head("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", 1, fields, head));
}

// Differential: mutated heads (seeded, repeatable). Whatever the plain parser accepts, Beast must
// read the same way (method, target, fields in order with the same trimmed values, length,
// keep-alive) and the edge checks must pass; what it declines still goes to Beast, unchanged.
TEST(request_head, what_the_plain_parser_accepts_beast_reads_the_same_way) {
  const std::string seeds[] = {
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 96\r\n"
      "Content-Type: application/json\r\nAuthorization: Bearer unused\r\n\r\n",
      "GET /v1/models?x=1 HTTP/1.1\r\nhost: a\r\nConnection: close\r\nX-Request-Id: abc\r\n\r\n",
      "HEAD /health HTTP/1.1\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n"};
  const std::string alphabet =
      std::string(" :\t\r\nAa0,;=/?%\"\\\x7f\x80\x01", 19) + std::string(1, '\0');
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string raw = seeds[iter % 3];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % (raw.size() - 4);  // the final blank line stays
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          raw[at] = c;
          break;
        case 1:
          raw.insert(raw.begin() + static_cast<std::ptrdiff_t>(at), c);
          break;
        default:
          raw.erase(at, 1);
          break;
      }
    }
    const size_t end = raw.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    raw.resize(end + 4);
    std::vector<http::header_view> fields;
    http::plain_head head;
    if (!http::parse_plain_head(raw, 100, fields, head)) continue;
    ++accepted;
    bhttp::request_parser<bhttp::empty_body> parser;
    parser.body_limit(1u << 20);
    boost::system::error_code ec;
    parser.put(net::buffer(raw), ec);
    ASSERT_TRUE(!ec || ec == bhttp::error::need_more) << ec.message() << " for " << raw;
    ASSERT_TRUE(parser.is_header_done()) << raw;
    const auto& msg = parser.get();
    EXPECT_EQ(msg.method_string(), head.method) << raw;
    EXPECT_EQ(msg.target(), head.target) << raw;
    EXPECT_EQ(msg.version(), 11u) << raw;
    EXPECT_EQ(msg.keep_alive(), head.keep_alive) << raw;
    EXPECT_EQ(parser.content_length().value_or(0), head.content_length) << raw;
    size_t i = 0;
    for (const auto& f : msg) {
      ASSERT_LT(i, fields.size()) << raw;
      EXPECT_EQ(f.name_string(), fields[i].name) << raw;
      EXPECT_EQ(f.value(), fields[i].value) << raw;
      ++i;
    }
    EXPECT_EQ(i, fields.size()) << raw;
    std::vector<auth::header_view> guard;
    for (const auto& f : fields) guard.push_back({f.name, f.value});
    EXPECT_TRUE(
        auth::check_request_headers(guard, raw, {.max_count = 100, .max_bytes = raw.size()}).ok)
        << raw;
  }
  EXPECT_GT(accepted, 1000);  // the mutations must leave many heads plain, or this tests nothing
}

TEST_F(http_server, body_over_limit_is_413) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
  auto r = read_response(s, buf);
  EXPECT_EQ(r.result_int(), 413);
  EXPECT_NE(r.body().find("\"type\":\"invalid_request_error\""), std::string::npos);
  EXPECT_FALSE(r.keep_alive());
}

TEST_F(http_server, chunked_body_over_limit_is_413) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  std::string raw = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) raw += "200\r\n" + std::string(512, 'x') + "\r\n";
  raw += "0\r\n\r\n";
  send(s, raw);
  EXPECT_EQ(read_response(s, buf).result_int(), 413);
}

TEST_F(http_server, headers_over_limit_are_431) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'b') + "\r\n\r\n");
  EXPECT_EQ(read_response(s, buf).result_int(), 431);
}

TEST_F(http_server, garbage_is_400_and_server_lives_on) {
  {
    auto s = connect();
    boost::beast::flat_buffer buf;
    send(s, "\x01\x02garbage\r\n\r\n");
    EXPECT_EQ(read_response(s, buf).result_int(), 400);
  }
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_response(s, buf).result_int(), 200);
}

TEST_F(http_server, handler_exception_is_500) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "GET /throw HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = read_response(s, buf);
  EXPECT_EQ(r.result_int(), 500);
  EXPECT_NE(r.body().find("server_error"), std::string::npos);
}

TEST_F(http_server, stream_is_chunked_and_connection_survives) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = read_response(s, buf);
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r["Transfer-Encoding"], "chunked");
  EXPECT_EQ(r["Content-Type"], "text/event-stream");
  EXPECT_EQ(r.body(), "abc");
  send(s, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_response(s, buf).result_int(), 200);
}

TEST_F(http_server, expect_continue_gets_100_then_the_answer) {
  auto s = connect();
  send(s, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  std::string got(25, '\0');
  net::read(s, net::buffer(got));
  EXPECT_EQ(got, "HTTP/1.1 100 Continue\r\n\r\n");
  send(s, "abc");
  boost::beast::flat_buffer buf;
  auto r = read_response(s, buf);
  EXPECT_EQ(r.body(), "POST /echo abc ");
}

TEST_F(http_server, client_that_leaves_fires_the_gone_signal) {
  auto gone = handler_.gone.get_future();
  {
    auto s = connect();
    send(s, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }  // closed here
  EXPECT_EQ(gone.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  // The server still serves.
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_response(s, buf).result_int(), 200);
}

TEST_F(http_server, drain_lets_in_flight_requests_finish) {
  auto s = connect();
  send(s, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(server_->requests_in_flight(), 1);
  std::promise<int64_t> drained;
  server_->drain(std::chrono::seconds(5), [&] { drained.set_value(server_->requests_in_flight()); });
  auto f = drained.get_future();
  boost::beast::flat_buffer buf;
  auto r = read_response(s, buf);
  EXPECT_EQ(r.body(), "slow");
  EXPECT_FALSE(r.keep_alive());  // draining: the connection closes after the answer
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(f.get(), 0);
  EXPECT_EQ(server_->state(), http::lifecycle::draining);
  // New connections are refused once draining.
  tcp::socket late(client_io_);
  boost::system::error_code ec;
  late.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_), ec);
  EXPECT_TRUE(ec);
}

TEST_F(http_server, counts_requests_and_bytes) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  read_response(s, buf);
  // The server counts a write when its completion runs, which may be just after we read.
  for (int i = 0; i < 200 && registry_.bytes_sent.value() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GT(registry_.bytes_received.value(), 20u);
  EXPECT_GT(registry_.bytes_sent.value(), 40u);
  EXPECT_EQ(registry_.connections_active.value(), 1);
}

TEST(wire, request_id_rules) {
  EXPECT_TRUE(http::is_sane_request_id("a"));
  EXPECT_TRUE(http::is_sane_request_id("A-z_0.9"));
  EXPECT_TRUE(http::is_sane_request_id(std::string(128, 'x')));
  EXPECT_FALSE(http::is_sane_request_id(std::string(129, 'x')));
  EXPECT_FALSE(http::is_sane_request_id(""));
  EXPECT_FALSE(http::is_sane_request_id("a b"));
  EXPECT_FALSE(http::is_sane_request_id("a\r\nx: y"));
  EXPECT_FALSE(http::is_sane_request_id("ä"));
  EXPECT_NE(http::make_request_id(), http::make_request_id());
  const auto r = http::random_alnum(24);
  EXPECT_EQ(r.size(), 24u);
  for (char c : r) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)));
  // Appended after a prefix, at lengths around the 10 characters one 64-bit draw gives.
  for (size_t length : {0, 1, 9, 10, 11, 20, 24, 100}) {
    std::string id = "chatcmpl-";
    http::append_random_alnum(id, length);
    ASSERT_EQ(id.size(), 9 + length);
    EXPECT_EQ(id.substr(0, 9), "chatcmpl-");
    for (size_t i = 9; i < id.size(); ++i)
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(id[i]))) << id;
  }
  EXPECT_NE(http::random_alnum(24), http::random_alnum(24));
  // Every 6-bit draw of every number is used: all 62 characters turn up in 1000 (a draw reused or
  // skipped would narrow them; missing one by chance has odds near 1e-5).
  const std::string many = http::random_alnum(1000);
  EXPECT_EQ(std::set<char>(many.begin(), many.end()).size(), 62u);
}

// The head as plain appends would write it: what append_response_head must produce, written
// into room it makes once.
std::string reference_head(const http::response& res, std::string_view id, size_t length, bool keep) {
  std::string h = "HTTP/1.1 " + std::to_string(res.status) + " " + std::string(http::reason_phrase(res.status)) +
                  "\r\nServer: moat\r\nContent-Type: " + std::string(res.content_type);
  h += res.stream ? "\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache"
                  : "\r\nContent-Length: " + std::to_string(length);
  if (!id.empty()) h += "\r\nx-request-id: " + std::string(id);
  for (const auto& f : res.headers) h += "\r\n" + f.name + ": " + f.value;
  return h + (keep ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n");
}

TEST(wire, response_head_matches_plain_appends_for_every_shape) {
  std::mt19937 rng(7);
  const int statuses[] = {200, 404, 429, 503, 999, 100};
  for (int i = 0; i < 500; ++i) {
    http::response res;
    res.status = statuses[i % 6];
    res.content_type = i % 3 ? "application/json" : "text/event-stream; charset=utf-8";
    if (i % 4 == 0) res.stream = std::make_shared<ready_stream>();
    for (int h = 0; h < i % 4; ++h) {
      res.headers.push_back({std::string(1 + rng() % 40, 'n'), std::string(rng() % 300, 'v')});
    }
    const std::string id = i % 5 ? std::string(1 + rng() % 128, 'r') : "";
    const size_t length = i % 7 ? rng() : SIZE_MAX;
    const bool keep = i % 2;
    std::string out = i % 3 ? "" : "previous bytes";  // appends after what is there
    const std::string before = out;
    http::append_response_head(out, res, id, length, keep);
    EXPECT_EQ(out, before + reference_head(res, id, length, keep)) << "case " << i;
  }
}

TEST(wire, response_head_and_chunks) {
  http::response res;
  res.status = 429;
  res.headers.push_back({"Retry-After", "1"});
  std::string out;
  http::append_response_head(out, res, "rid", 12, true);
  EXPECT_EQ(out,
            "HTTP/1.1 429 Too Many Requests\r\nServer: moat\r\nContent-Type: application/json\r\n"
            "Content-Length: 12\r\nx-request-id: rid\r\nRetry-After: 1\r\n"
            "Connection: keep-alive\r\n\r\n");
  out.clear();
  http::append_chunk(out, std::string(26, 'z'));
  EXPECT_EQ(out, "1a\r\n" + std::string(26, 'z') + "\r\n");
  out.clear();
  http::append_chunk(out, "");
  EXPECT_EQ(out, "");
}

}  // namespace

// ---- timeouts: one coarse deadline per connection, swept by the server ----------------------

namespace {

struct counting_connection : http::timed_connection {
  std::atomic<int> expired{0};
  void expire() override { ++expired; }
};

}  // namespace

TEST(deadline_sweeper, a_deadline_is_set_on_the_steady_clock_at_most_a_tick_early) {
  // set_deadline reads the coarse monotonic clock; overdue() and the sweep compare against
  // steady_clock. Both must be one clock: a deadline lands within a timer tick (<= 10 ms at
  // HZ=100) before from_now on steady_clock, never after it.
  using namespace std::chrono_literals;
  counting_connection c;
  for (int i = 0; i < 100; ++i) {
    const auto before = std::chrono::steady_clock::now();
    c.set_deadline(1000ms);
    const auto after = std::chrono::steady_clock::now();
    EXPECT_FALSE(c.overdue(before + 1000ms - 20ms));
    EXPECT_TRUE(c.overdue(after + 1000ms));
  }
  c.clear_deadline();
  EXPECT_FALSE(c.overdue(std::chrono::steady_clock::now() + 1000h));
}

TEST(deadline_sweeper, expires_only_overdue_connections_until_removed) {
  net::io_context io;
  http::deadline_sweeper sweeper(std::chrono::milliseconds(10));
  counting_connection due, cleared, never_set;
  sweeper.add(due);
  sweeper.add(cleared);
  sweeper.add(never_set);
  EXPECT_EQ(sweeper.size(), 3u);
  due.set_deadline(std::chrono::milliseconds(30));
  cleared.set_deadline(std::chrono::milliseconds(30));
  cleared.clear_deadline();
  sweeper.start(io);
  io.run_for(std::chrono::milliseconds(150));
  EXPECT_GT(due.expired.load(), 0);  // swept on every tick while overdue: the owner clears it
  EXPECT_EQ(cleared.expired.load(), 0);
  EXPECT_EQ(never_set.expired.load(), 0);
  EXPECT_TRUE(due.overdue(std::chrono::steady_clock::now()));
  sweeper.remove(due);
  sweeper.remove(due);  // twice is harmless
  const int before = due.expired.load();
  io.restart();
  io.run_for(std::chrono::milliseconds(60));
  EXPECT_EQ(due.expired.load(), before);
  EXPECT_EQ(sweeper.size(), 2u);
  sweeper.stop();
  sweeper.remove(cleared);
  sweeper.remove(never_set);
  EXPECT_EQ(sweeper.size(), 0u);
}

TEST_F(http_server, idle_keep_alive_connection_is_closed_after_idle_timeout) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_response(s, buf).result_int(), 200);
  const double t = seconds_until_closed(s, 6);
  EXPECT_GE(t, 1.5);  // idle_timeout_s is 2; the sweep adds at most a tick
  EXPECT_LE(t, 3.5);
}

TEST_F(http_server, request_trickled_past_read_timeout_is_cut) {
  auto s = connect();
  send(s, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
  const double t = seconds_until_closed(s, 6);
  EXPECT_GE(t, 1.5);  // read_timeout_s is 2
  EXPECT_LE(t, 3.5);
}

TEST_F(http_server, handler_slower_than_the_read_timeout_is_not_cut) {
  // While the handler works the connection has no deadline (request_timeout_s bounds the
  // backend): 2.6 s against read_timeout_s 2, then the connection is kept alive for another.
  auto s = connect();
  boost::beast::flat_buffer buf;
  for (const char* path : {"/slower", "/slow"}) {
    send(s, std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
    auto res = read_response(s, buf);
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_EQ(res.body(), "slow");
  }
}

TEST_F(http_server, ready_stream_goes_out_with_its_head_and_the_connection_survives) {
  // A source with bytes waiting (ready()) is pulled before the head is written, so head and
  // bytes leave together: the framing must be the same as for a late source.
  auto s = connect();
  boost::beast::flat_buffer buf;
  for (int i = 0; i < 2; ++i) {
    send(s, "GET /ready-stream HTTP/1.1\r\nHost: x\r\n\r\n");
    auto res = read_response(s, buf);
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_EQ(res[bhttp::field::transfer_encoding], "chunked");
    EXPECT_EQ(res.body(), "data: 1\n\ndata: 2\n\n");
  }
}

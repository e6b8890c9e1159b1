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
#include <thread>

#include "http/deadlines.h"
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

// Every server test runs with one I/O thread (plain connections on the edge poller,
// http/edge_socket.h) and with two (Asio's reactor and a strand per connection).
class http_server : public moat::testing::server_fixture<scripted_handler>,
                    public ::testing::WithParamInterface<int> {
 protected:
  void SetUp() override {
    config::server_config limits;
    limits.max_body_bytes = 1024;
    limits.max_header_bytes = 1024;
    limits.read_timeout_s = 2;
    limits.idle_timeout_s = 2;
    start(limits, GetParam());
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

TEST_P(http_server, keep_alive_and_request_ids) {
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

TEST_P(http_server, pipelined_requests_are_answered_in_order) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "GET /echo?1 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo?2 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_response(s, buf).body(), "GET /echo?1  ");
  EXPECT_EQ(read_response(s, buf).body(), "GET /echo?2  ");
}

// Plain requests are read in place; the same request with its body still on the way, chunked, or
// in HTTP/1.0 goes through Beast: every form gets the same answer, and pipelined bodies stay apart.
TEST_P(http_server, plain_and_beast_parsed_requests_get_the_same_answers) {
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

TEST_P(http_server, body_over_limit_is_413) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
  auto r = read_response(s, buf);
  EXPECT_EQ(r.result_int(), 413);
  EXPECT_NE(r.body().find("\"type\":\"invalid_request_error\""), std::string::npos);
  EXPECT_FALSE(r.keep_alive());
}

TEST_P(http_server, chunked_body_over_limit_is_413) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  std::string raw = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) raw += "200\r\n" + std::string(512, 'x') + "\r\n";
  raw += "0\r\n\r\n";
  send(s, raw);
  EXPECT_EQ(read_response(s, buf).result_int(), 413);
}

TEST_P(http_server, headers_over_limit_are_431) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'b') + "\r\n\r\n");
  EXPECT_EQ(read_response(s, buf).result_int(), 431);
}

TEST_P(http_server, garbage_is_400_and_server_lives_on) {
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

TEST_P(http_server, handler_exception_is_500) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "GET /throw HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = read_response(s, buf);
  EXPECT_EQ(r.result_int(), 500);
  EXPECT_NE(r.body().find("server_error"), std::string::npos);
}

TEST_P(http_server, stream_is_chunked_and_connection_survives) {
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

TEST_P(http_server, expect_continue_gets_100_then_the_answer) {
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

TEST_P(http_server, client_that_leaves_fires_the_gone_signal) {
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

TEST_P(http_server, drain_lets_in_flight_requests_finish) {
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

TEST_P(http_server, counts_requests_and_bytes) {
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

TEST_P(http_server, idle_keep_alive_connection_is_closed_after_idle_timeout) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_response(s, buf).result_int(), 200);
  const double t = seconds_until_closed(s, 6);
  EXPECT_GE(t, 1.5);  // idle_timeout_s is 2; the sweep adds at most a tick
  EXPECT_LE(t, 3.5);
}

TEST_P(http_server, request_trickled_past_read_timeout_is_cut) {
  auto s = connect();
  send(s, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
  const double t = seconds_until_closed(s, 6);
  EXPECT_GE(t, 1.5);  // read_timeout_s is 2
  EXPECT_LE(t, 3.5);
}

TEST_P(http_server, handler_slower_than_the_read_timeout_is_not_cut) {
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

TEST_P(http_server, ready_stream_goes_out_with_its_head_and_the_connection_survives) {
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

INSTANTIATE_TEST_SUITE_P(io_threads, http_server, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == 1 ? std::string("one_thread_edge")
                                                  : std::to_string(info.param) + "_threads_asio";
                         });

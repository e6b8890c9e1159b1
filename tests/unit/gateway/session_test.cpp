// The session's watch on a client while the backend works: armed only for an answer that is not
// back after the watch delay (each arming is an epoll_ctl), and then a client that leaves is
// still noticed, whether the request waits for its answer or for the next streamed chunk. Also
// what the session's shortcuts keep: an answer larger than the socket takes at once, an answer
// from another thread, and the client signal it re-arms per request.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http/edge_socket.h"
#include "http/server.h"
#include "server_fixture.h"

namespace {

namespace net = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using namespace moat;
using namespace std::chrono_literals;

// Three chunks, each posted `gap` after the pull asked for it (a slow backend when gap is long).
class gapped_stream : public http::stream_source {
 public:
  gapped_stream(net::any_io_executor strand, std::chrono::milliseconds gap)
      : strand_(strand), gap_(gap) {}
  void pull(next_fn next) override {
    const int i = i_++;
    auto timer = std::make_shared<net::steady_timer>(strand_, gap_);
    timer->async_wait([timer, i, next = std::move(next)](boost::system::error_code) {
      static const char* parts[] = {"data: a\n\n", "data: b\n\n", "data: c\n\n"};
      next(parts[i], i == 2);
    });
  }

 private:
  net::any_io_executor strand_;
  std::chrono::milliseconds gap_;
  int i_ = 0;
};

// Has its pieces at once (ready(), each pull answers inline, as a fast backend's drain does): the
// session writes each piece where it lies, between its size line and its tail.
class pieces_stream : public http::stream_source {
 public:
  explicit pieces_stream(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {}
  bool ready() const override { return next_ < pieces_.size(); }
  void pull(next_fn next) override {
    const size_t i = next_++;
    next(std::move(pieces_[i]), i + 1 == pieces_.size());
  }

 private:
  std::vector<std::string> pieces_;
  size_t next_ = 0;
};

class watch_handler : public http::handler {
 public:
  void handle(const http::request& req, http::responder respond) override {
    if (req.path == "/now") {
      http::response res;
      res.body = "now";
      respond(std::move(res));
    } else if (req.path == "/soon") {
      // Answered from a later handler, well within the watch delay: as a quick backend does.
      net::post(req.strand, [respond] {
        http::response res;
        res.body = "soon";
        respond(std::move(res));
      });
    } else if (req.path == "/slow") {
      auto timer = std::make_shared<net::steady_timer>(req.strand, 400ms);
      timer->async_wait([timer, respond](boost::system::error_code) {
        http::response res;
        res.body = "slow";
        respond(std::move(res));
      });
    } else if (req.path == "/hang" || req.path == "/slow-stream") {
      // The responder is kept until the client leaves (as the host's sink keeps it until the
      // backend's terminal event), and answers then, as the host does after its cancel.
      const bool hang = req.path == "/hang";
      req.client->on_gone([this, hang, respond] {
        {
          std::lock_guard lock(mutex_);
          if (gone_) gone_->set_value();
          gone_.reset();
        }
        if (hang) respond(http::response{});
      });
      if (!hang) {
        http::response res;
        res.content_type = "text/event-stream";
        res.stream = std::make_shared<gapped_stream>(req.strand, 3s);
        respond(std::move(res));
      }
    } else if (req.path == "/big") {
      http::response res;
      res.body = big_body();
      respond(std::move(res));
    } else if (req.path == "/big-stream") {
      // A piece larger than the socket takes, an empty piece (no chunk of its own), a small
      // last piece; then an empty last piece alone.
      http::response res;
      res.content_type = "text/event-stream";
      res.stream =
          std::make_shared<pieces_stream>(std::vector<std::string>{big_body(), "", "tail", ""});
      respond(std::move(res));
    } else if (req.path == "/elsewhere") {
      // Answered from a thread that is not the connection's: the answer is posted onto it.
      std::thread([this, respond = std::move(respond)]() mutable {
        {
          auto answer = std::move(respond);  // let go of the session before counting
          http::response res;
          res.body = "elsewhere";
          answer(std::move(res));
        }
        elsewhere_done_.fetch_add(1);
      }).detach();
    } else if (req.path == "/register") {
      // What a finished request registered must never run later (the signal is re-armed).
      req.client->on_gone([this] { stale_fires_.fetch_add(1); });
      respond(http::response{});
    } else if (req.path == "/keep") {
      kept_ = req.client;  // someone holds this request's signal past its answer
      respond(http::response{});
    } else if (req.path == "/check") {
      http::response res;
      res.body = req.client->gone() ? "gone" : "live";
      res.body += req.client == kept_ ? " same" : " other";
      respond(std::move(res));
    } else {
      http::response res;
      res.status = 404;
      respond(std::move(res));
    }
  }
  // 8 MiB, more than loopback's socket buffers take at once: the session sends what the socket
  // takes and leaves the rest to an async write.
  static const std::string& big_body() {
    static const std::string body = [] {
      std::string b(8u << 20, '\0');
      for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
      return b;
    }();
    return body;
  }
  std::atomic<int> stale_fires_{0};
  std::atomic<int> elsewhere_done_{0};
  std::shared_ptr<http::client_signal> kept_;
  std::future<void> expect_gone() {
    std::lock_guard lock(mutex_);
    gone_.emplace();
    return gone_->get_future();
  }

 private:
  std::mutex mutex_;
  std::optional<std::promise<void>> gone_;
};

class session_watch : public moat::testing::server_fixture<watch_handler> {
 protected:
  void SetUp() override {
    config::server_config limits;
    limits.read_timeout_s = 5;
    limits.idle_timeout_s = 5;
    start(limits, 1);
  }
  static std::string get(const std::string& path) {
    return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  }
};

TEST_F(session_watch, quick_answers_never_arm_the_watch) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  for (int i = 0; i < 200; ++i) {
    send(s, get(i % 2 ? "/now" : "/soon"));
    auto res = read_response(s, buf);
    ASSERT_EQ(res.result_int(), 200);
    EXPECT_EQ(res.body(), i % 2 ? "now" : "soon");
  }
  // Pipelined: the second request is buffered while the first is handled.
  send(s, get("/soon") + get("/now"));
  EXPECT_EQ(read_response(s, buf).body(), "soon");
  EXPECT_EQ(read_response(s, buf).body(), "now");
  // None, unless this process was descheduled past the watch delay mid-request (a loaded CI
  // machine); arming one per request would show as ~200.
  EXPECT_LE(server_->client_watches(), 3u);
}

// One I/O thread: plain connections are on the edge poller, where a keep-alive read waits for
// the client's next bytes without a recv first (Asio's reactor tried one per read, and it always
// found nothing: the client waits for the answer before it sends again).
TEST_F(session_watch, keep_alive_reads_never_find_an_empty_socket) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  for (int i = 0; i < 100; ++i) {
    send(s, get("/now"));
    ASSERT_EQ(read_response(s, buf).body(), "now");
  }
  send(s, get("/soon") + get("/now"));  // pipelined, then one at a time again
  EXPECT_EQ(read_response(s, buf).body(), "soon");
  EXPECT_EQ(read_response(s, buf).body(), "now");
  send(s, get("/now"));
  EXPECT_EQ(read_response(s, buf).body(), "now");
  const auto stats = server_->edge_stats();
  EXPECT_GE(stats.reads, 102u);
  EXPECT_LE(stats.reads, 110u);
  EXPECT_EQ(stats.reads_blocked, 0u);
  EXPECT_GE(stats.wakeups, 1u);
}

TEST_F(session_watch, slow_answer_arms_the_watch_and_the_connection_goes_on) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  send(s, get("/slow"));
  auto res = read_response(s, buf);
  EXPECT_EQ(res.body(), "slow");
  EXPECT_GE(server_->client_watches(), 1u);
  // The watch armed for the slow answer is still pending when the next request comes: that
  // request and a pipelined pair after it are read and answered all the same.
  send(s, get("/now"));
  EXPECT_EQ(read_response(s, buf).body(), "now");
  send(s, get("/soon") + get("/now"));
  EXPECT_EQ(read_response(s, buf).body(), "soon");
  EXPECT_EQ(read_response(s, buf).body(), "now");
}

TEST_F(session_watch, client_leaving_a_hanging_request_is_noticed) {
  auto gone = handler_.expect_gone();
  {
    auto s = connect();
    send(s, get("/hang"));
    std::this_thread::sleep_for(20ms);  // before the watch delay: the watch is not armed yet
    // Closed as it goes out of scope.
  }
  EXPECT_EQ(gone.wait_for(5s), std::future_status::ready);
  EXPECT_GE(server_->client_watches(), 1u);
}

TEST_F(session_watch, client_leaving_between_slow_chunks_is_noticed) {
  auto gone = handler_.expect_gone();
  {
    auto s = connect();
    send(s, get("/slow-stream"));
    char head[64];
    s.read_some(net::buffer(head));  // the head (and maybe the first chunk) arrived
    // Closed as it goes out of scope, while the stream waits 3 s for its next chunk.
  }
  // Noticed by the watch, well before a write of that chunk could fail.
  EXPECT_EQ(gone.wait_for(1500ms), std::future_status::ready);
}

TEST_F(session_watch, response_larger_than_the_socket_takes_arrives_whole) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  // Pipelined behind a request that answers at once, and followed by one: the big answer is
  // written partly at once and partly by an async write, in order, and the connection goes on.
  send(s, get("/now") + get("/big") + get("/now"));
  std::this_thread::sleep_for(200ms);  // the server's socket buffer fills before anything is read
  EXPECT_EQ(read_response(s, buf).body(), "now");
  auto big = read_response(s, buf);
  ASSERT_EQ(big.result_int(), 200);
  EXPECT_TRUE(big.body() == watch_handler::big_body())
      << "body of " << big.body().size() << " bytes differs";
  EXPECT_EQ(read_response(s, buf).body(), "now");
  send(s, get("/big"));
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(read_response(s, buf).body() == watch_handler::big_body());
  send(s, get("/now"));
  EXPECT_EQ(read_response(s, buf).body(), "now");
}

TEST_F(session_watch, streamed_piece_larger_than_the_socket_takes_arrives_whole) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  // The pieces are written in place (size line, piece, tail as one gather write); what the
  // socket does not take goes on through an async write, and the chunk framing stays exact.
  send(s, get("/now") + get("/big-stream") + get("/now"));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(read_response(s, buf).body(), "now");
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(32u << 20);
  bhttp::read(s, buf, parser);
  const auto& big = parser.get();
  ASSERT_EQ(big.result_int(), 200);
  EXPECT_EQ(big[bhttp::field::transfer_encoding], "chunked");
  EXPECT_TRUE(big.body() == watch_handler::big_body() + "tail")
      << "body of " << big.body().size() << " bytes differs";
  EXPECT_EQ(read_response(s, buf).body(), "now");
}

TEST_F(session_watch, answer_from_another_thread_is_posted_onto_the_connection) {
  auto s = connect();
  boost::beast::flat_buffer buf;
  for (int i = 0; i < 50; ++i) {
    send(s, get(i % 2 ? "/now" : "/elsewhere"));
    EXPECT_EQ(read_response(s, buf).body(), i % 2 ? "now" : "elsewhere");
  }
  // The answering threads end before the server does (each held the session).
  for (int i = 0; i < 500 && handler_.elsewhere_done_.load() < 25; ++i)
    std::this_thread::sleep_for(2ms);
  EXPECT_EQ(handler_.elsewhere_done_.load(), 25);
}

TEST_F(session_watch, each_request_gets_a_live_signal_without_the_last_ones_callback) {
  {
    auto s = connect();
    boost::beast::flat_buffer buf;
    send(s, get("/register"));
    EXPECT_EQ(read_response(s, buf).result_int(), 200);
    send(s, get("/check"));
    EXPECT_EQ(read_response(s, buf).body(), "live other");
    // A signal someone still holds is never re-armed under them: the next request gets another.
    send(s, get("/keep"));
    EXPECT_EQ(read_response(s, buf).result_int(), 200);
    send(s, get("/check"));
    EXPECT_EQ(read_response(s, buf).body(), "live other");
    send(s, get("/register"));
    EXPECT_EQ(read_response(s, buf).result_int(), 200);
  }
  // The connection closed with an idle signal: no finished request's callback runs.
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(handler_.stale_fires_.load(), 0);
  ASSERT_NE(handler_.kept_, nullptr);
  EXPECT_FALSE(handler_.kept_->gone());

  // A connection's re-armed signal still fires for a later request whose client leaves.
  auto gone = handler_.expect_gone();
  {
    auto s = connect();
    boost::beast::flat_buffer buf;
    for (int i = 0; i < 3; ++i) {
      send(s, get("/now"));
      EXPECT_EQ(read_response(s, buf).body(), "now");
    }
    send(s, get("/hang"));
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(gone.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(handler_.stale_fires_.load(), 0);
}

// ---- edge_socket alone: a loopback pair, the poller started on a private io_context ------------

struct edge_pair {
  http::edge_poller poller;  // before io: handlers still queued there may hold sockets
  net::io_context io;
  tcp::socket client{io};
  std::optional<http::edge_socket> server;

  edge_pair() {
    tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    client.connect(acceptor.local_endpoint());
    tcp::socket accepted = acceptor.accept();
    poller.start(io);
    server.emplace(poller, accepted.release(), io.get_executor());
  }
  ~edge_pair() {
    server.reset();
    poller.stop();
  }
  // Runs handlers until `done` or 2 s.
  template <class Pred>
  bool run_until(Pred done) {
    const auto until = std::chrono::steady_clock::now() + 2s;
    while (!done() && std::chrono::steady_clock::now() < until) io.run_one_for(10ms);
    return done();
  }
};

TEST(edge_socket, reads_wait_for_the_next_edge_and_close_aborts_them) {
  edge_pair p;
  char buf[64];
  std::optional<std::pair<boost::system::error_code, size_t>> got;
  auto read = [&] {
    got.reset();
    p.server->async_read_some(net::buffer(buf),
                              [&](boost::system::error_code ec, size_t n) { got.emplace(ec, n); });
  };
  read();
  p.io.poll();
  EXPECT_FALSE(got);
  EXPECT_EQ(p.poller.stats().reads, 0u);  // nothing sent yet: no recv tried
  net::write(p.client, net::buffer(std::string("hello")));
  ASSERT_TRUE(p.run_until([&] { return got.has_value(); }));
  EXPECT_FALSE(got->first);
  EXPECT_EQ(std::string(buf, got->second), "hello");

  read();  // the last recv took less than it asked: wait for an edge, no recv now
  for (int i = 0; i < 5; ++i) p.io.run_one_for(5ms);
  EXPECT_FALSE(got);
  EXPECT_EQ(p.poller.stats().reads, 1u);
  net::write(p.client, net::buffer(std::string("world!")));
  ASSERT_TRUE(p.run_until([&] { return got.has_value(); }));
  EXPECT_EQ(std::string(buf, got->second), "world!");
  EXPECT_EQ(p.poller.stats().reads_blocked, 0u);

  // A readiness wait completes when the client half-closes; the read after it sees the end.
  bool waited = false;
  p.server->async_wait(tcp::socket::wait_read, [&](boost::system::error_code ec) { waited = !ec; });
  p.client.shutdown(tcp::socket::shutdown_send);
  ASSERT_TRUE(p.run_until([&] { return waited; }));
  read();
  ASSERT_TRUE(p.run_until([&] { return got.has_value(); }));
  EXPECT_EQ(got->first, net::error::eof);

  // A pending read ends with operation_aborted when the socket is closed (as a timeout does).
  edge_pair q;
  got.reset();
  q.server->async_read_some(net::buffer(buf),
                            [&](boost::system::error_code ec, size_t n) { got.emplace(ec, n); });
  boost::system::error_code ec;
  q.server->close(ec);
  ASSERT_TRUE(q.run_until([&] { return got.has_value(); }));
  EXPECT_EQ(got->first, net::error::operation_aborted);
  q.server->async_read_some(net::buffer(buf),
                            [&](boost::system::error_code e, size_t n) { got.emplace(e, n); });
  got.reset();
  ASSERT_TRUE(q.run_until([&] { return got.has_value(); }));
  EXPECT_EQ(got->first, net::error::bad_descriptor);
}

TEST(edge_socket, a_write_larger_than_the_socket_takes_completes_on_writable_edges) {
  edge_pair p;
  std::string data(8u << 20, 'x');
  for (size_t i = 0; i < data.size(); i += 4096) data[i] = static_cast<char>('a' + (i / 4096) % 26);
  std::optional<std::pair<boost::system::error_code, size_t>> wrote;
  net::async_write(*p.server, net::buffer(data),
                   [&](boost::system::error_code ec, size_t n) { wrote.emplace(ec, n); });
  // The client reads everything on another thread while the io_context runs the writes.
  std::string received;
  std::thread reader([&] {
    boost::system::error_code ec;
    std::string chunk(1 << 16, '\0');
    while (received.size() < data.size()) {
      const size_t n = p.client.read_some(net::buffer(chunk), ec);
      if (ec) break;
      received.append(chunk, 0, n);
    }
  });
  const bool done = p.run_until([&] { return wrote.has_value(); });
  reader.join();
  ASSERT_TRUE(done);
  EXPECT_FALSE(wrote->first);
  EXPECT_EQ(wrote->second, data.size());
  EXPECT_TRUE(received == data);
}

TEST(edge_socket, stopping_the_poller_drops_pending_handlers_and_what_they_hold) {
  auto held = std::make_shared<int>(7);
  std::weak_ptr<int> watch = held;
  {
    edge_pair p;
    char buf[16];
    p.server->async_read_some(net::buffer(buf), [held](boost::system::error_code, size_t) {});
    p.server->async_wait(tcp::socket::wait_read, [held](boost::system::error_code) {});
    held.reset();
    p.io.poll();
    EXPECT_FALSE(watch.expired());  // held by the pending operations
    p.poller.stop();
    EXPECT_TRUE(watch.expired());
  }
}

}  // namespace

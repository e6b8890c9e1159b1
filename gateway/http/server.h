// The HTTP/1.1 server: one io_context run by a pool of I/O threads, a strand per connection,
// limits and timeouts from server_config, and a graceful drain. With one I/O thread, plain
// connections are watched by an edge-triggered epoll set of our own instead of Asio's reactor
// (edge_socket.h: one recv per keep-alive request instead of two).
//
//   moat::http::server srv(cfg.server, my_handler, registry);
//   auto [host, port] = srv.listen("127.0.0.1", 0);   // the real bound port
//   srv.set_state(moat::http::lifecycle::ready);
//   srv.run(4);                                        // blocks until stop()
//   // from a signal: srv.drain(30s, [&] { srv.stop(); });
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "auth/edge_guard.h"
#include "config/config.h"
#include "http/deadlines.h"
#include "http/edge_socket.h"
#include "http/message.h"
#include "metrics/registry.h"
#include "tls/tls_context.h"

namespace moat::http {

// What every session of one server shares: read-only limits and the live counters.
struct server_context {
  config::server_config limits;
  handler* app = nullptr;
  metrics::registry* metrics = nullptr;
  std::atomic<int> state{static_cast<int>(lifecycle::loading)};
  std::atomic<int64_t> requests_in_flight{0};  // dispatched to the handler, not yet answered
  auth::connection_limiter per_ip{0};  // server.max_connections_per_ip, set by the server
  tls::server_context_holder* tls = nullptr;  // set: every connection speaks TLS
  deadline_sweeper* deadlines = nullptr;  // read/write/idle timeouts of every connection
  // Readiness waits armed to notice a client leaving while the backend works (each one an
  // epoll_ctl; a quick answer arms none). For tests and the per-request bench.
  std::atomic<uint64_t> client_watches{0};

  bool draining() const { return state.load(std::memory_order_relaxed) == static_cast<int>(lifecycle::draining); }
};

class server {
 public:
  server(const config::server_config& limits, handler& app, metrics::registry& metrics);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds and starts accepting. Throws std::system_error naming the address when it cannot.
  config::listen_address listen(const std::string& host, uint16_t port);

  // Runs the I/O threads (0: one per core) and returns when the io_context stops.
  void run(unsigned threads);
  // Stops the io_context: open connections are dropped. Any thread.
  void stop();

  // Stops accepting, turns /health to 503, and calls `done` (on an I/O thread) when no request
  // is in flight or `timeout` passed. Any thread.
  void drain(std::chrono::milliseconds timeout, std::function<void()> done);

  // Serves HTTPS with the holder's current context (kept per connection, so a reload on SIGHUP
  // never drops one). Call before listen(); the holder must outlive the server.
  void use_tls(tls::server_context_holder& holder) { ctx_.tls = &holder; }

  void set_state(lifecycle s) { ctx_.state.store(static_cast<int>(s)); }
  lifecycle state() const { return static_cast<lifecycle>(ctx_.state.load()); }
  int64_t requests_in_flight() const { return ctx_.requests_in_flight.load(); }
  uint64_t client_watches() const { return ctx_.client_watches.load(std::memory_order_relaxed); }
  boost::asio::io_context& io() { return io_; }
  // The edge poller's counters (all zero with several I/O threads or MOAT_HTTP_EDGE=0).
  edge_poller::counters edge_stats() const { return poller_.stats(); }

 private:
  void do_accept();
  void check_drained();

  // ctx_, deadlines_ and poller_ first: sessions destroyed with io_'s pending handlers still
  // use them.
  server_context ctx_;
  deadline_sweeper deadlines_{std::chrono::milliseconds(100)};
  // Plain connections' readiness with one I/O thread (started by run(1)): a keep-alive read
  // costs one recv, not two (edge_socket.h).
  edge_poller poller_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer drain_timer_;
  // Set by run(1): one I/O thread already runs every handler in order, so connections accepted
  // from then on use the io_context's executor instead of a strand (no strand lock and queue per
  // handler). Connections accepted before keep their strand; either is correct.
  std::atomic<bool> one_thread_{false};
  std::chrono::steady_clock::time_point drain_deadline_;
  std::function<void()> drain_done_;
};

}  // namespace moat::http

#include "http/server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <cstdlib>
#include <string_view>
#include <system_error>

#include "http/session.h"

namespace moat::http {

namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;

server::server(const config::server_config& limits, handler& app, metrics::registry& metrics)
    : acceptor_(io_), drain_timer_(io_) {
  ctx_.limits = limits;
  ctx_.deadlines = &deadlines_;
  ctx_.app = &app;
  ctx_.metrics = &metrics;
  ctx_.per_ip = auth::connection_limiter(limits.max_connections_per_ip);
}

server::~server() {
  deadlines_.stop();
  io_.stop();
  poller_.stop();  // drops pending reads' handlers (and their sessions) while io_ still exists
  deadlines_.release();
  boost::system::error_code ec;
  acceptor_.close(ec);
}

config::listen_address server::listen(const std::string& host, uint16_t port) {
  boost::system::error_code ec;
  auto address = net::ip::make_address(host, ec);
  if (ec) {
    // A host name: resolve it once at start (localhost and the like).
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty()) {
      throw std::system_error(ec, "cannot resolve listen host '" + host + "'");
    }
    address = results.begin()->endpoint().address();
  }
  const tcp::endpoint endpoint(address, port);
  const std::string where = host + ":" + std::to_string(port);
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) throw std::system_error(ec, "cannot open a socket for " + where);
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  acceptor_.bind(endpoint, ec);
  if (ec) throw std::system_error(ec, "cannot bind " + where);
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) throw std::system_error(ec, "cannot listen on " + where);
  const auto local = acceptor_.local_endpoint();
  do_accept();
  deadlines_.start(io_);
  return {local.address().to_string(), local.port()};
}

void server::do_accept() {
  // Each connection gets its own strand: its handlers never run concurrently. With one I/O
  // thread the io_context's own executor gives that guarantee already.
  const net::any_io_executor executor = one_thread_.load(std::memory_order_relaxed)
                                            ? net::any_io_executor(io_.get_executor())
                                            : net::any_io_executor(net::make_strand(io_));
  acceptor_.async_accept(executor, [this](boost::system::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
      // EMFILE and friends: keep accepting; the next attempt may succeed once fds are freed.
      spdlog::warn("accept failed: {}", ec.message());
    } else if (ctx_.metrics->connections_active.value() >=
               static_cast<int64_t>(ctx_.limits.max_connections)) {
      boost::system::error_code ignored;
      socket.close(ignored);
    } else {
      boost::system::error_code ignored;
      const auto remote = socket.remote_endpoint(ignored);
      auto slot = ctx_.per_ip.try_acquire(ignored ? std::string() : remote.address().to_string());
      if (!slot) {
        // One address holds server.max_connections_per_ip already: refuse before any byte is read.
        ctx_.metrics->connections_refused_per_ip.add();
        socket.close(ignored);
      } else {
        socket.set_option(tcp::no_delay(true), ignored);
        if (ctx_.tls != nullptr) {
          auto tls_ctx = ctx_.tls->current();
          boost::beast::ssl_stream<tcp::socket> stream(std::move(socket), *tls_ctx);
          std::make_shared<tls_session>(std::move(stream), ctx_, std::move(*slot), tls_ctx)->run();
        } else if (poller_.running()) {
          // One I/O thread: the connection leaves Asio's reactor for our edge-triggered set and
          // runs on the io_context's executor (the strand it was accepted with is not needed).
          const int fd = socket.release(ignored);
          if (!ignored) {
            edge_socket stream(poller_, fd, io_.get_executor());
            std::make_shared<edge_session>(std::move(stream), ctx_, std::move(*slot))->run();
          }
        } else {
          std::make_shared<session>(std::move(socket), ctx_, std::move(*slot))->run();
        }
      }
    }
    if (acceptor_.is_open()) do_accept();
  });
}

void server::run(unsigned threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  one_thread_.store(threads == 1, std::memory_order_relaxed);
  // MOAT_HTTP_EDGE=0 keeps plain connections on Asio's reactor (for A/B measurements, or should
  // the edge poller misbehave somewhere).
  const char* edge = std::getenv("MOAT_HTTP_EDGE");
  if (threads == 1 && (edge == nullptr || std::string_view(edge) != "0")) poller_.start(io_);
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([this] { io_.run(); });
  io_.run();
  for (auto& t : pool) t.join();
}

void server::stop() {
  deadlines_.stop();
  io_.stop();
}

void server::drain(std::chrono::milliseconds timeout, std::function<void()> done) {
  net::post(io_, [this, timeout, done = std::move(done)]() mutable {
    set_state(lifecycle::draining);
    boost::system::error_code ec;
    acceptor_.close(ec);
    drain_deadline_ = std::chrono::steady_clock::now() + timeout;
    drain_done_ = std::move(done);
    check_drained();
  });
}

void server::check_drained() {
  const int64_t left = requests_in_flight();
  if (left == 0 || std::chrono::steady_clock::now() >= drain_deadline_) {
    if (left > 0) spdlog::warn("drain timeout: {} request(s) still in flight are dropped", left);
    if (auto done = std::move(drain_done_)) {
      drain_done_ = nullptr;
      done();
    }
    return;
  }
  drain_timer_.expires_after(std::chrono::milliseconds(20));
  drain_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) check_drained();
  });
}

}  // namespace moat::http

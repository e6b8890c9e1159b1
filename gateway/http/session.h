// One client connection: reads requests (a plain head in place, anything else with Beast's
// parser), hands a request view to the handler, and writes its response (a full body, or a
// stream pulled chunk by chunk). Plain HTTP reads and writes on the bare tcp::socket (Beast's
// tcp_stream wrapped every operation in its own op layers for an expiry we never use: timeouts
// are the deadline_sweeper's), and writes a response at once when the socket takes it whole.
// Everything here runs on the connection's strand; other threads reach a session only by
// posting onto that strand (see docs/operations.md for the threading picture).
#pragma once

#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cstddef>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "http/edge_socket.h"
#include "http/message.h"
#include "http/request_head.h"
#include "http/server.h"

namespace moat::http {

// Stream: edge_socket (plain HTTP with one I/O thread: readiness tracked by our own epoll set,
// edge_socket.h), tcp::socket (plain HTTP with several I/O threads) or
// beast::ssl_stream<tcp::socket> (TLS, which handshakes first and records the client
// certificate in the request's peer_info).
template <class Stream>
class basic_session : public std::enable_shared_from_this<basic_session<Stream>>, public timed_connection {
 public:
  // `keep`: what must outlive the stream (the TLS context the connection started with).
  basic_session(Stream stream, server_context& ctx, auth::connection_limiter::slot ip_slot,
                std::shared_ptr<void> keep = nullptr);
  ~basic_session();
  void run();

 private:
  using tcp = boost::asio::ip::tcp;
  static constexpr bool is_tls = std::is_same_v<Stream, boost::beast::ssl_stream<tcp::socket>>;
  // The socket itself: tcp::socket, or edge_socket, which offers the same calls the session makes.
  auto& lowest() { return boost::beast::get_lowest_layer(stream_); }

  enum class phase { reading, handling, streaming, writing, closed };

  void do_read_header();
  void read_raw_header();
  void on_plain_request(size_t head_bytes);
  void on_read_header(boost::beast::error_code ec, size_t bytes);
  void do_read_body();
  void read_body();
  void on_read_body(boost::beast::error_code ec, size_t bytes);
  void on_read_error(boost::beast::error_code ec);
  void dispatch();

  void respond(response&& res);
  void do_pull();
  void on_chunk(std::string data, bool last);

  // What a write was for: on_sent continues with it, whether the write finished at once or
  // through async_write.
  enum class sent { response, stream_head, chunk, last_chunk, error_reply, continue_100 };
  // Plain HTTP: one non-blocking send first; a response of a few hundred bytes nearly always
  // leaves whole, without an async op, its handler and a trip through the scheduler. What the
  // socket did not take (or everything, over TLS) goes through async_write under
  // read_timeout_s. on_sent runs inline after a whole send unless that could re-enter the code
  // that answered (see send_now_ok).
  template <class Buffers>
  void write(const Buffers& buffers, sent what);
  void on_sent(boost::beast::error_code ec, size_t bytes, sent what);
  bool send_now_ok(sent what) const;
  void finish_response();
  void fail_response();

  // Timeouts: one coarse deadline per connection, set per phase (read_timeout_s while reading
  // a request or writing, idle_timeout_s between keep-alive requests, none while the backend
  // works: then only client_watch_delay, below) and enforced by the server's deadline_sweeper;
  // Beast's per-operation expiry stays off.
  void expire() override;  // sweeper thread: posts on_deadline
  void on_deadline();      // strand: cuts the connection if the deadline still stands

  // A timeout of the current phase (never the watch delay below).
  void set_timeout(std::chrono::milliseconds from_now) {
    watch_due_ = false;
    set_deadline(from_now);
  }

  // While the backend works nothing is read from the client, so a client that leaves is noticed
  // by a readiness wait on its socket (watch_client). Arming that wait is an epoll_ctl, so it is
  // armed only for an answer not back after client_watch_delay (by the sweeper, at most a tick
  // later): the usual quick answer never arms it. Once armed it stays until it fires.
  static constexpr std::chrono::milliseconds client_watch_delay{50};
  void wait_for_backend();
  void watch_client();
  void on_watch(boost::beast::error_code ec);

  // An error the HTTP layer answers itself (400/413/431) before the handler saw the request.
  void reply_and_close(int status, std::string_view message);
  void close_gracefully();
  void do_linger();

  // One request's header fields, target and body live in a per-connection arena, released
  // when the next request starts (the handler's views into them are dead by then): Beast's
  // parser otherwise makes one allocation per header field, one for the target and one for the
  // body, request after request. A request larger than the inline block spills to the heap in
  // growing chunks, freed at the same release.
  using arena_allocator = std::pmr::polymorphic_allocator<char>;
  using request_body =
      boost::beast::http::basic_string_body<char, std::char_traits<char>, arena_allocator>;
  using request_parser = boost::beast::http::request_parser<request_body, arena_allocator>;
  static constexpr size_t arena_inline_bytes = 2048;

  Stream stream_;
  // The connection's executor (a strand, or the io_context's own with one I/O thread), kept so
  // that posting onto it, or telling whether a responder runs on it, needs no copy of the
  // type-erased executor from the stream.
  const boost::asio::any_io_executor executor_;
  boost::beast::flat_buffer buffer_;  // reused: may hold the start of a pipelined request
  alignas(std::max_align_t) std::array<std::byte, arena_inline_bytes> arena_block_;
  std::pmr::monotonic_buffer_resource arena_{arena_block_.data(), arena_block_.size(),
                                             std::pmr::new_delete_resource()};
  std::optional<request_parser> parser_;  // built in arena_; destroyed before each release
  server_context& ctx_;
  auth::connection_limiter::slot ip_slot_;  // this connection's place under the per-IP cap
  std::shared_ptr<const peer_info> peer_;
  std::shared_ptr<void> keep_;

  phase phase_ = phase::reading;
  bool first_request_ = true;
  bool keep_alive_ = true;
  bool watching_ = false;
  // The deadline set is client_watch_delay: it arms the watch, it cuts nothing.
  bool watch_due_ = false;
  bool head_pending_ = false;  // streaming: out_ holds the head, to be sent with the first chunk
  bool counted_ = false;  // this request is in ctx_.requests_in_flight
  bool in_handler_ = false;  // ctx_.app->handle() is on the stack
  int inline_sends_ = 0;     // on_sent calls on the stack from sends that finished at once
  size_t bytes_in_ = 0;
  int status_ = 0;
  metrics::route route_ = metrics::route::unknown;

  // The request being handled, from either parser; views into buffer_ (plain) or the arena.
  struct current_request {
    std::string_view method;
    std::string_view target;
    std::string_view body;
  } current_;
  plain_head plain_;
  size_t plain_bytes_ = 0;  // a plain request's bytes, left in buffer_ until it is answered
  std::vector<header_view> headers_;  // reused per request
  std::vector<auth::header_view> guard_fields_;  // reused per request: the smuggling checks' view
  std::string request_id_;
  std::string out_;   // response head, or one framed chunk, being written
  std::string body_;  // full response body being written
  std::string chunk_;  // streaming: the pulled bytes being written (between out_ and their tail)
  std::shared_ptr<stream_source> source_;
  std::shared_ptr<client_signal> client_;
  std::unique_ptr<char[]> linger_buf_;
};

using session = basic_session<boost::asio::ip::tcp::socket>;
using edge_session = basic_session<edge_socket>;
using tls_session = basic_session<boost::beast::ssl_stream<boost::asio::ip::tcp::socket>>;

}  // namespace moat::http

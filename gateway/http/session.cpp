#include "http/session.h"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>

#include "http/request_head.h"
#include "http/wire.h"
#include "tls/tls_context.h"
#include "util/ascii.h"
#include "util/executor.h"

namespace moat::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

}  // namespace

template <class Stream>
basic_session<Stream>::basic_session(Stream stream, server_context& ctx,
                                     auth::connection_limiter::slot ip_slot,
                                     std::shared_ptr<void> keep)
    : stream_(std::move(stream)),
      executor_(stream_.get_executor()),
      ctx_(ctx),
      ip_slot_(std::move(ip_slot)),
      keep_(std::move(keep)) {
  ctx_.metrics->connections_active.add(1);
  beast::error_code ec;
  auto peer = std::make_shared<peer_info>();
  const auto remote = lowest().remote_endpoint(ec);
  if (!ec) peer->ip = remote.address().to_string();
  peer_ = std::move(peer);
  // User-level non-blocking, so the disconnect probe's peek never blocks an I/O thread.
  lowest().non_blocking(true, ec);
  if (ctx_.deadlines != nullptr) ctx_.deadlines->add(*this);
}

template <class Stream>
basic_session<Stream>::~basic_session() {
  // First: a sweep running now must not call expire() on a half-destroyed session.
  if (ctx_.deadlines != nullptr) ctx_.deadlines->remove(*this);
  if (client_) client_->fire();
  if (counted_) ctx_.requests_in_flight.fetch_sub(1);
  ctx_.metrics->connections_active.add(-1);
}

template <class Stream>
void basic_session<Stream>::run() {
  if constexpr (is_tls) {
    // The handshake has read_timeout_s too. A failed one (plain HTTP, TLS below 1.2, a missing or
    // foreign client certificate under mTLS) closes the connection without an answer.
    set_timeout(to_ms(ctx_.limits.read_timeout_s));
    stream_.async_handshake(net::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
      if (ec) {
        spdlog::debug("TLS handshake refused: {}", ec.message());
        beast::error_code ignored;
        self->lowest().close(ignored);
        return;
      }
      auto peer = std::make_shared<peer_info>(*self->peer_);
      peer->tls = true;
      const auto id = tls::peer_identity_of(self->stream_.native_handle());
      peer->cert_verified = id.present && id.verified;
      peer->subject = id.subject;
      peer->common_name = id.common_name;
      peer->sans = id.sans;
      self->peer_ = std::move(peer);
      self->do_read_header();
    });
  } else {
    net::dispatch(executor_, [self = this->shared_from_this()] { self->do_read_header(); });
  }
}

// ---- reading ------------------------------------------------------------------------------

template <class Stream>
void basic_session<Stream>::do_read_header() {
  phase_ = phase::reading;
  // The previous request is answered: the bytes its views pointed into can go, and so can
  // Beast's parser (its fields and body are in the arena), if it was needed.
  buffer_.consume(plain_bytes_);
  plain_bytes_ = 0;
  parser_.reset();
  arena_.release();
  bytes_in_ = 0;
  // A keep-alive connection may idle for idle_timeout_s; a first request must arrive within
  // read_timeout_s of the connect.
  const bool idle = !first_request_ && buffer_.size() == 0;
  set_timeout(to_ms(idle ? ctx_.limits.idle_timeout_s : ctx_.limits.read_timeout_s));
  read_raw_header();
}

// Reads until the header block is buffered, to refuse obs-fold on the raw bytes (Beast unfolds
// it silently), then lets Beast parse what is already there. The deadline set above covers
// every read: a client trickling bytes is cut at read_timeout_s.
template <class Stream>
void basic_session<Stream>::read_raw_header() {
  const auto data = buffer_.data();
  const std::string_view raw(static_cast<const char*>(data.data()), data.size());
  // The usual request (plain head, its whole body already buffered, within the limits) is read
  // in place, parsed straight from the buffer without a search for its end first; anything else
  // goes through Beast from the same bytes (request_head.h). A plain head has no obs-fold (every
  // field line starts with a token character), so the scan for one is needed only before Beast
  // sees the bytes.
  if (!parser_) {
    const size_t head_bytes =
        parse_buffered_plain_head(raw, ctx_.limits.max_headers, headers_, plain_);
    if (head_bytes != 0 && head_bytes <= ctx_.limits.max_header_bytes &&
        plain_.content_length <= ctx_.limits.max_body_bytes &&
        plain_.content_length <= raw.size() - head_bytes) {
      return on_plain_request(head_bytes);
    }
  }
  const size_t end = find_head_end(raw);
  if (end == std::string_view::npos) {
    if (raw.size() > ctx_.limits.max_header_bytes) {
      return reply_and_close(431, "request headers are larger than server.max_header_bytes");
    }
    stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
      if (ec) return self->on_read_error(ec);
      self->buffer_.commit(n);
      self->read_raw_header();
    });
    return;
  }
  const std::string_view head = raw.substr(0, end + 4);
  if (auth::has_obs_fold(head)) {
    return reply_and_close(400, "obsolete line folding (obs-fold) in a header is not accepted");
  }
  // The header is buffered whole: parse it here rather than through Beast's async_read_header,
  // whose completion would cost one more trip through the strand per request.
  if (!parser_) {
    const arena_allocator alloc(&arena_);
    parser_.emplace(std::piecewise_construct, std::make_tuple(alloc), std::make_tuple(alloc));
    parser_->header_limit(ctx_.limits.max_header_bytes);
    parser_->body_limit(ctx_.limits.max_body_bytes);
  }
  beast::error_code ec;
  const size_t n = parser_->put(buffer_.data(), ec);
  buffer_.consume(n);
  if (ec == bhttp::error::need_more) {
    // Only possible for bytes Beast skips before a request line; read on.
    stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code rec, size_t got) {
      if (rec) return self->on_read_error(rec);
      self->buffer_.commit(got);
      self->read_raw_header();
    });
    return;
  }
  on_read_header(ec, n);
}

// A plain request whose head and body are in buffer_: its views point there, and the bytes are
// consumed when the next request starts (do_read_header).
template <class Stream>
void basic_session<Stream>::on_plain_request(size_t head_bytes) {
  first_request_ = false;
  const auto data = buffer_.data();
  const std::string_view raw(static_cast<const char*>(data.data()), data.size());
  plain_bytes_ = head_bytes + static_cast<size_t>(plain_.content_length);
  // No auth::check_request_headers here: a plain head within the limits passes it by
  // construction (request_head.h).
  current_ = {plain_.method, plain_.target,
              raw.substr(head_bytes, static_cast<size_t>(plain_.content_length))};
  keep_alive_ = plain_.keep_alive;
  bytes_in_ = plain_bytes_;
  ctx_.metrics->bytes_received.add(bytes_in_);
  dispatch();
}

template <class Stream>
void basic_session<Stream>::on_read_header(beast::error_code ec, size_t bytes) {
  bytes_in_ += bytes;
  if (ec) return on_read_error(ec);
  first_request_ = false;
  // Smuggling and header-limit checks Beast leaves to us (duplicate or conflicting lengths...).
  guard_fields_.clear();  // reused: no allocation per request once a connection has seen one
  for (const auto& f : parser_->get()) guard_fields_.push_back({f.name_string(), f.value()});
  const auto verdict = auth::check_request_headers(
      guard_fields_, {},
      {.max_count = ctx_.limits.max_headers, .max_bytes = ctx_.limits.max_header_bytes});
  if (!verdict.ok) return reply_and_close(verdict.status, verdict.reason);
  const auto expect = parser_->get()[bhttp::field::expect];
  if (!expect.empty() && util::iequals(expect, "100-continue") && !parser_->is_done()) {
    return write(net::buffer(continue_100_bytes.data(), continue_100_bytes.size()),
                 sent::continue_100);
  }
  do_read_body();
}

template <class Stream>
void basic_session<Stream>::do_read_body() {
  if (parser_->is_done()) return on_read_body({}, 0);
  set_timeout(to_ms(ctx_.limits.read_timeout_s));
  parser_->eager(true);  // from here on a put() takes all the body bytes it is given
  read_body();
}

// Feeds the buffered bytes to the parser and reads more only while it needs more: a body that
// came with its header (the usual case) is complete without another read. Bytes after the body
// (a pipelined request) stay in buffer_.
template <class Stream>
void basic_session<Stream>::read_body() {
  while (!parser_->is_done() && buffer_.size() > 0) {
    beast::error_code ec;
    const size_t n = parser_->put(buffer_.data(), ec);
    buffer_.consume(n);
    bytes_in_ += n;
    if (ec == bhttp::error::need_more) break;
    if (ec) return on_read_error(ec);
    if (n == 0) break;
  }
  if (parser_->is_done()) return on_read_body({}, 0);
  stream_.async_read_some(buffer_.prepare(16384), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
    if (ec) return self->on_read_error(ec);
    self->buffer_.commit(n);
    self->read_body();
  });
}

template <class Stream>
void basic_session<Stream>::on_read_body(beast::error_code ec, size_t bytes) {
  bytes_in_ += bytes;
  if (ec) return on_read_error(ec);
  ctx_.metrics->bytes_received.add(bytes_in_);
  auto& msg = parser_->get();
  headers_.clear();
  for (const auto& f : msg) headers_.push_back({f.name_string(), f.value()});
  current_ = {msg.method_string(), msg.target(), msg.body()};
  keep_alive_ = msg.keep_alive();
  dispatch();
}

template <class Stream>
void basic_session<Stream>::on_read_error(beast::error_code ec) {
  if (ec == bhttp::error::header_limit) {
    return reply_and_close(431, "request headers are larger than server.max_header_bytes");
  }
  if (ec == bhttp::error::body_limit) {
    return reply_and_close(413, "request body is larger than server.max_body_bytes");
  }
  if (ec.category() == bhttp::make_error_code(bhttp::error::end_of_stream).category() &&
      ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
    return reply_and_close(400, "malformed HTTP request");
  }
  // The peer closed, reset or timed out: nothing to answer.
  close_gracefully();
}

template <class Stream>
void basic_session<Stream>::dispatch() {
  request req;
  req.method = current_.method;
  req.target = current_.target;
  req.path = req.target.substr(0, req.target.find('?'));
  req.headers = headers_;
  req.body = current_.body;
  // Written into the connection's string: its capacity is reused request after request.
  // A plain head picked the client's id up while it was parsed.
  const auto client_id = plain_bytes_ != 0 ? plain_.request_id : req.header("x-request-id");
  if (is_sane_request_id(client_id)) {
    request_id_.assign(client_id);
  } else {
    assign_request_id(request_id_);
  }
  req.request_id = request_id_;
  req.strand = executor_;
  // One signal per connection (finish_response re-arms it while no one else holds it), not an
  // allocation per request.
  if (!client_) client_ = std::make_shared<client_signal>();
  req.client = client_;
  req.peer = peer_;

  clear_deadline();  // the backend's time is bounded by request_timeout_s, not by the client
  phase_ = phase::handling;
  counted_ = true;
  ctx_.requests_in_flight.fetch_add(1);
  in_handler_ = true;
  try {
    // dispatch: inline when the handler answers on the strand, else posted onto it.
    // An answer given on this connection's thread (as the host delivers them) is taken at
    // once; one from elsewhere is posted onto the connection's executor.
    ctx_.app->handle(req, [self = this->shared_from_this()](response res) {
      if (util::running_here(self->executor_)) return self->respond(std::move(res));
      net::post(self->executor_,
                [self, res = std::move(res)]() mutable { self->respond(std::move(res)); });
    });
  } catch (const std::exception& e) {
    // Handlers answer errors as values; this is the last line so a bug never kills a worker.
    spdlog::error("[{}] handler failed: {}", request_id_, e.what());
    if (phase_ == phase::handling) {
      response res;
      res.status = 500;
      res.body = error_json("internal error", "server_error");
      respond(std::move(res));
    }
  }
  in_handler_ = false;
  if (phase_ == phase::handling) wait_for_backend();
}

// ---- writing ------------------------------------------------------------------------------

template <class Stream>
void basic_session<Stream>::respond(response&& res) {
  if (phase_ != phase::handling) return;  // a second answer, or the connection is gone
  status_ = res.status;
  route_ = res.route;
  if (res.close || ctx_.draining()) keep_alive_ = false;
  out_.clear();
  append_response_head(out_, res, request_id_, res.body.size(), keep_alive_);
  if (is_head(current_.method)) {
    // HEAD: the head GET would get (its Content-Length included), no body (RFC 9110 9.3.2).
    // A HEAD answer never has a body, chunked or not: a stream source is dropped unread.
    phase_ = phase::writing;
    body_.clear();
    return write(net::buffer(out_), sent::response);
  }
  if (res.stream) {
    phase_ = phase::streaming;
    source_ = std::move(res.stream);
    if (source_->ready()) {
      // The first bytes are already there: they go out with the head, in one write. The pull is
      // posted rather than made now: this answer usually comes from inside the host's drain of
      // the request's queued events, so by the time the pull runs every event already queued
      // (for a fast backend, the whole stream) has reached the source and leaves in that write.
      head_pending_ = true;
      util::post_direct(executor_, [self = this->shared_from_this()] { self->do_pull(); });
      return;
    }
    return write(net::buffer(out_), sent::stream_head);
  }
  phase_ = phase::writing;
  body_ = std::move(res.body);
  const std::array<net::const_buffer, 2> buffers{net::buffer(out_), net::buffer(body_)};
  write(buffers, sent::response);
}

template <class Stream>
bool basic_session<Stream>::send_now_ok(sent what) const {
  if constexpr (is_tls) {
    return false;  // the bytes go through OpenSSL: async_write does the record layer
  } else {
    // Continuing inline must not re-enter what answered: the handler itself (its request's views
    // must outlive its responder call), nor read a pipelined request from inside the code that
    // responded (e.g. the host's drain); a stream whose source hands chunks over at once would
    // also nest one level per chunk. Those cases go through async_write as before.
    if (in_handler_ || inline_sends_ > 0) return false;
    if (what == sent::response || what == sent::last_chunk) return buffer_.size() <= plain_bytes_;
    return true;
  }
}

template <class Stream>
template <class Buffers>
void basic_session<Stream>::write(const Buffers& buffers, sent what) {
  size_t done = 0;
  if (send_now_ok(what)) {
    // The socket is non-blocking (constructor): this never waits. would_block, a partial send
    // or an error (reset, broken pipe) leave the rest to async_write, which reports the error.
    beast::error_code ec;
    done = lowest().send(buffers, 0, ec);
    if (!ec && done == net::buffer_size(buffers)) {
      ++inline_sends_;
      on_sent(ec, done, what);
      --inline_sends_;
      return;
    }
  }
  set_timeout(to_ms(ctx_.limits.read_timeout_s));
  beast::buffers_suffix<Buffers> rest(buffers);
  rest.consume(done);
  net::async_write(stream_, rest,
                   [self = this->shared_from_this(), what, done](beast::error_code ec, size_t n) {
                     self->on_sent(ec, done + n, what);
                   });
}

template <class Stream>
void basic_session<Stream>::on_sent(beast::error_code ec, size_t bytes, sent what) {
  if (what != sent::continue_100) ctx_.metrics->bytes_sent.add(bytes);
  switch (what) {
    case sent::response:
    case sent::last_chunk:
      if (ec) return fail_response();
      return finish_response();
    case sent::stream_head:
    case sent::chunk:
      if (ec) return fail_response();
      wait_for_backend();
      return do_pull();
    case sent::error_reply:
      if (ec) return fail_response();
      return close_gracefully();
    case sent::continue_100:
      if (ec) return close_gracefully();
      return do_read_body();
  }
}

template <class Stream>
void basic_session<Stream>::do_pull() {
  source_->pull([self = this->shared_from_this()](std::string data, bool last) {
    // As an answer (dispatch): taken at once on the connection's own thread, as the host's
    // drain delivers it, without net::dispatch wrapping a handler for the type-erased executor;
    // posted from anywhere else.
    if (util::running_here(self->executor_)) return self->on_chunk(std::move(data), last);
    net::post(self->executor_, [self, data = std::move(data), last]() mutable {
      self->on_chunk(std::move(data), last);
    });
  });
}

template <class Stream>
void basic_session<Stream>::on_chunk(std::string data, bool last) {
  if (phase_ != phase::streaming) return;
  if (!head_pending_) out_.clear();  // else out_ holds the unsent head: the chunk follows it
  head_pending_ = false;
  // One gather write: out_ (the head, if pending, and the chunk-size line), the pulled bytes
  // themselves, kept in chunk_ until written, and the chunk's tail (with the last chunk when
  // the stream ends). A streamed answer is a few KiB: copying it into out_ cost more than the
  // framing around it.
  chunk_ = std::move(data);
  append_chunk_size(out_, chunk_.size());
  const std::string_view tail = chunk_tail(chunk_.size(), last);
  if (out_.empty() && tail.empty()) return do_pull();
  const std::array<net::const_buffer, 3> buffers{net::buffer(out_), net::buffer(chunk_),
                                                 net::buffer(tail.data(), tail.size())};
  write(buffers, last ? sent::last_chunk : sent::chunk);
}

template <class Stream>
void basic_session<Stream>::finish_response() {
  ctx_.metrics->http_request(route_, status_);
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("[{}] {} {} -> {}", request_id_, current_.method, current_.target, status_);
  }
  counted_ = false;
  ctx_.requests_in_flight.fetch_sub(1);
  // What the handler registered goes now (e.g. its weak hold on the backend call); the signal
  // itself is kept for the next request unless someone else still holds it.
  if (client_.use_count() == 1) {
    client_->rearm();
  } else {
    client_.reset();
  }
  source_.reset();
  body_.clear();
  std::string().swap(chunk_);  // a streamed answer's last bytes: freed now, as before, not kept
  if (!keep_alive_) return close_gracefully();
  do_read_header();
}

// The client went away or stalled during the response: the backend request is cancelled and
// the connection closed; the session ends when the last pending handler lets go of it.
template <class Stream>
void basic_session<Stream>::fail_response() {
  if (client_) client_->fire();
  client_.reset();
  source_.reset();
  if (counted_) {
    counted_ = false;
    ctx_.requests_in_flight.fetch_sub(1);
  }
  phase_ = phase::closed;
  beast::error_code ec;
  lowest().close(ec);
}

// ---- timeouts ---------------------------------------------------------------------------------

template <class Stream>
void basic_session<Stream>::expire() {
  // Called under the sweeper's lock; a session being destroyed cannot be locked any more.
  if (auto self = this->weak_from_this().lock()) {
    net::post(executor_, [self = std::move(self)] { self->on_deadline(); });
  }
}

template <class Stream>
void basic_session<Stream>::on_deadline() {
  if (!overdue(clock::now())) return;  // re-armed or cleared since the sweep
  clear_deadline();
  if (watch_due_) {
    // The backend is still working client_watch_delay after it began: watch the client now.
    watch_due_ = false;
    if (phase_ == phase::handling || phase_ == phase::streaming) watch_client();
    return;
  }
  // As Beast's own expiry did: close the socket, so the pending read or write ends with an
  // error and its handler closes the session (a stalled writer's request is cancelled).
  spdlog::debug("[{}] connection timed out ({})", request_id_, static_cast<int>(phase_));
  beast::error_code ec;
  lowest().close(ec);
}

// ---- noticing a client that left while the backend works -----------------------------------

template <class Stream>
void basic_session<Stream>::wait_for_backend() {
  // No deadline while the backend works (request_timeout_s bounds it), only the watch delay.
  if (watching_) return clear_deadline();
  if (ctx_.deadlines == nullptr) {
    clear_deadline();  // nothing would sweep the delay: watch at once
    return watch_client();
  }
  watch_due_ = true;
  set_deadline(client_watch_delay);
}

template <class Stream>
void basic_session<Stream>::watch_client() {
  if (watching_) return;
  watching_ = true;
  ctx_.client_watches.fetch_add(1, std::memory_order_relaxed);
  lowest().async_wait(tcp::socket::wait_read, [self = this->shared_from_this()](
                                                  beast::error_code ec) { self->on_watch(ec); });
}

template <class Stream>
void basic_session<Stream>::on_watch(beast::error_code ec) {
  watching_ = false;
  if (ec) return;
  if (phase_ != phase::handling && phase_ != phase::streaming) return;  // stale probe
  char byte = 0;
  beast::error_code peek_ec;
  const size_t n = lowest().receive(net::buffer(&byte, 1), tcp::socket::message_peek, peek_ec);
  if (peek_ec == net::error::would_block || peek_ec == net::error::try_again) return watch_client();
  if (n == 0 || peek_ec) {
    spdlog::debug("[{}] client went away before the response ended", request_id_);
    if (client_) client_->fire();
    return;
  }
  // Bytes of a pipelined request: the client is still there; it is read after this response.
}

// ---- errors the HTTP layer answers itself, and closing --------------------------------------

template <class Stream>
void basic_session<Stream>::reply_and_close(int status, std::string_view message) {
  ctx_.metrics->http_request(metrics::route::unknown, status);
  ctx_.metrics->error("invalid_request_error");
  phase_ = phase::writing;
  keep_alive_ = false;
  response res;
  res.status = status;
  body_ = error_json(message, "invalid_request_error");
  out_.clear();
  append_response_head(out_, res, request_id_.empty() ? make_request_id() : request_id_,
                       body_.size(), false);
  const std::array<net::const_buffer, 2> buffers{net::buffer(out_), net::buffer(body_)};
  write(buffers, sent::error_reply);
}

// Half-close, then read and discard what the client still sends for a moment: closing with
// unread bytes would reset the connection and could destroy the response before it is read.
template <class Stream>
void basic_session<Stream>::close_gracefully() {
  phase_ = phase::closed;
  beast::error_code ec;
  lowest().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) {
    lowest().close(ec);
    return;
  }
  linger_buf_ = std::make_unique<char[]>(4096);
  set_timeout(std::chrono::seconds(2));
  do_linger();
}

template <class Stream>
void basic_session<Stream>::do_linger() {
  stream_.async_read_some(net::buffer(linger_buf_.get(), 4096),
                          [self = this->shared_from_this()](beast::error_code ec, size_t) {
                            if (ec) {
                              beast::error_code ignored;
                              self->lowest().close(ignored);
                              return;
                            }
                            self->do_linger();
                          });
}

template class basic_session<tcp::socket>;
template class basic_session<edge_socket>;
template class basic_session<beast::ssl_stream<tcp::socket>>;

}  // namespace moat::http

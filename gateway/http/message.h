// What a handler sees of HTTP: a request view and a response value, no Beast types. A handler
// answers now or later (from the connection's strand) with a full body or a pull-based stream.
//
//   struct hello : moat::http::handler {
//     void handle(const moat::http::request& req, moat::http::responder respond) override {
//       moat::http::response res;
//       res.body = R"({"hello":"world"})";
//       respond(std::move(res));  // exactly once, on req.strand (here: inline)
//     }
//   };
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "metrics/registry.h"

namespace moat::http {

struct header_view {
  std::string_view name;
  std::string_view value;
};

struct header {
  std::string name;
  std::string value;
};

// Who is at the other end of a connection, as the HTTP layer knows it: the address and, over
// TLS, the client certificate (verified against server.tls.client_ca).
struct peer_info {
  std::string ip;
  bool tls = false;
  bool cert_verified = false;
  std::string subject;      // RFC 2253, empty without a client certificate
  std::string common_name;
  std::vector<std::string> sans;  // "DNS:...", "email:...", "URI:...", "IP:..."
};

// The "client went away" signal of one request. The session fires it (on the strand) when the
// peer closed the connection or a write failed; a handler registers what to do, e.g. cancel
// the backend request. Firing runs the callback at most once; registering after the fire runs
// it at once. One callback per request: registering again replaces the last one.
//
//   req.client->on_gone(call, [](host::call& c) { c.cancel(); });  // weak hold on `call`
class client_signal {
 public:
  // `fn(*target)` when the client leaves, if `target` is still alive then. The signal holds
  // `target` weakly and the callback as a plain function pointer: no allocation, where a
  // std::function holding a weak_ptr made one per request.
  template <class T>
  void on_gone(const std::shared_ptr<T>& target, std::type_identity_t<void (*)(T&)> fn) {
    set(target, reinterpret_cast<void (*)()>(fn),
        [](void (*f)(), void* t) { reinterpret_cast<void (*)(T&)>(f)(*static_cast<T*>(t)); });
  }
  // Any callable (allocates for a capture larger than two pointers).
  void on_gone(std::function<void()> fn);
  void fire();
  bool gone() const { return gone_; }
  // Back to "not gone, nothing registered", for the next request of the same connection (the
  // session re-arms its signal only while no one else holds it).
  void rearm() {
    gone_ = false;
    fn_ = nullptr;
    target_.reset();
    target_fn_ = nullptr;
  }

 private:
  using trampoline = void (*)(void (*fn)(), void* target);
  void set(std::weak_ptr<void> target, void (*fn)(), trampoline call);

  bool gone_ = false;
  std::function<void()> fn_;
  // The weak form: target_fn_ is the caller's void(T&), cast back by call_ (instantiated for T).
  std::weak_ptr<void> target_;
  void (*target_fn_)() = nullptr;
  trampoline call_ = nullptr;
};

// A parsed request. OWNERSHIP: the views point into the session's buffers and stay valid until
// the handler calls its responder; copy what is needed longer.
struct request {
  std::string_view method;  // "GET", "POST", ...
  std::string_view target;  // path and query, as sent
  std::string_view path;    // target without the query
  std::span<const header_view> headers;
  std::string_view body;
  std::string_view request_id;  // the client's x-request-id when sane, else one we made
  boost::asio::any_io_executor strand;  // the connection's strand: post work for it here
  std::shared_ptr<client_signal> client;
  std::shared_ptr<const peer_info> peer;  // never null from a session
  // Opaque to HTTP: the app's auth step stores who is calling (api: see caller_of in common.h).
  std::shared_ptr<void> caller;

  // Case-insensitive lookup; empty when absent.
  std::string_view header(std::string_view name) const;
};

// Yields a streamed body piece by piece. The session pulls the next piece only after the
// previous one is written, so a slow client slows the pulls instead of growing a write queue.
class stream_source {
 public:
  using next_fn = std::function<void(std::string data, bool last)>;
  virtual ~stream_source() = default;
  // Called on the strand. The source calls `next` exactly once, on the strand, now or later,
  // with the next bytes (may be empty) and whether the stream ends with them.
  virtual void pull(next_fn next) = 0;
  // Tokens (prompt + completion) the answer used, once the last bytes were pulled; 0 when the
  // source does not count tokens. Lets a key's tpm be charged whether or not the client asked
  // for a usage chunk.
  virtual uint64_t tokens_used() const { return 0; }
  // True when a pull() now would call `next` at once (bytes are waiting, or the stream ended):
  // the session then sends the response head and those bytes in one write. Called on the strand.
  virtual bool ready() const { return false; }
};

struct response {
  int status = 200;
  // Static text (a literal): every answer names one of a few types, and a std::string here
  // was one allocation per response ("application/json" is past the small-string limit).
  std::string_view content_type = "application/json";
  std::string body;
  std::vector<header> headers;             // extra, e.g. Retry-After
  std::shared_ptr<stream_source> stream;   // when set: body ignored, sent chunked as pulled
  bool close = false;                      // close the connection after this response
  metrics::route route = metrics::route::unknown;  // label for moat_http_requests_total
};

// Called exactly once per request, on the request's strand.
using responder = std::function<void(response)>;

class handler {
 public:
  virtual ~handler() = default;
  virtual void handle(const request& req, responder respond) = 0;
};

// The server's state as /health reports it: loading (models being created), ready, draining.
enum class lifecycle : int { loading, ready, draining };

}  // namespace moat::http

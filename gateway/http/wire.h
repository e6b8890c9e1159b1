// HTTP/1.1 response bytes written by hand into a reused buffer: a status line and a few headers
// are cheaper to append than to build through a generic serializer, and this is the hot path.
//
//   std::string out;
//   moat::http::append_response_head(out, res, "req-1", res.body.size(), /*keep_alive=*/true);
//   moat::http::append_chunk_size(out, data.size());
//   // one gather write: out, then `data` where it lies, then chunk_tail(data.size(), last)
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

#include "http/message.h"

namespace moat::http {

std::string_view reason_phrase(int status);

// Status line and headers, ending with the blank line. `content_length` is ignored for a
// streamed response (then Transfer-Encoding: chunked).
void append_response_head(std::string& out, const response& res, std::string_view request_id,
                          size_t content_length, bool keep_alive);

inline constexpr std::string_view last_chunk = "0\r\n\r\n";
inline constexpr std::string_view continue_100_bytes = "HTTP/1.1 100 Continue\r\n\r\n";

// An OpenAI-style error body for the errors HTTP answers itself (`message` and `type` are the
// gateway's own literals: no escaping needed).
std::string error_json(std::string_view message, std::string_view type);

// HEAD, by one 4-byte compare (string_view's == called compare() out of line).
inline bool is_head(std::string_view method) {
  return method.size() == 4 && std::memcmp(method.data(), "HEAD", 4) == 0;
}

// One chunk of a chunked body in three pieces, for a gather write that leaves `data` where it
// is: append_chunk_size(out, n) + data + chunk_tail(n, last) is "<n in hex>\r\n" data "\r\n",
// followed by last_chunk when `last`. An empty chunk writes no size line and no tail of its own
// (an empty chunk would end the body).
void append_chunk_size(std::string& out, size_t size);
constexpr std::string_view chunk_tail(size_t size, bool last) {
  constexpr std::string_view with_last = "\r\n0\r\n\r\n";
  if (size == 0) return last ? last_chunk : std::string_view();
  return last ? with_last : with_last.substr(0, 2);
}

// x-request-id rules: a client id is kept when it is 1..128 characters of [A-Za-z0-9._-];
// otherwise the gateway makes one (16 hex digits from a per-thread generator: unique enough to
// find a request in the logs, not a secret).
bool is_sane_request_id(std::string_view id);
std::string make_request_id();
// The same into `out` (replacing its text), reusing its capacity: the session's per-connection id.
void assign_request_id(std::string& out);
// Random [a-zA-Z0-9] text of `length`, for response ids (chatcmpl-…). Not for secrets.
std::string random_alnum(size_t length);
// The same appended to `out`, so "chatcmpl-" + 24 characters is built in one allocation.
void append_random_alnum(std::string& out, size_t length);

}  // namespace moat::http

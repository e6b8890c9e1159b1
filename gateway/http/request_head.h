// The plain HTTP/1.1 request head, parsed in one pass over bytes already buffered. Almost every
// request a gateway sees is a request line, a few `Name: value` fields and a Content-Length, and
// Beast's general parser (a field-name table lookup, an allocation and an ordered-set insert per
// field) cost about a tenth of the I/O thread's instructions per request. This parser accepts only
// that plain form and says "not plain" for everything else: the session then hands the same bytes
// to Beast, which keeps every rule and error it always had (chunked bodies, Expect, HTTP/1.0,
// folded or non-ASCII fields, conflicting lengths, limits...).
//
//   std::vector<moat::http::header_view> fields;
//   moat::http::plain_head head;
//   if (moat::http::parse_plain_head(raw_through_blank_line, 100, fields, head)) {
//     // head.method, head.target, head.content_length, head.keep_alive; fields view `raw`
//   } else {
//     // let Beast parse it
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace moat::http {

struct plain_head {
  std::string_view method;      // a token, e.g. "POST"
  std::string_view target;      // visible ASCII, as sent
  uint64_t content_length = 0;  // 0 without a Content-Length field
  bool keep_alive = true;       // HTTP/1.1: unless "Connection: close"
  // The first X-Request-Id field's value (what request::header would find), picked up on the
  // way: the session needs it for every request. A null view when there is none.
  std::string_view request_id;
};

// `raw`: the head through its blank line ("...\r\n\r\n"). True when it is in the plain form:
//   METHOD SP target SP "HTTP/1.1" CRLF, then up to `max_fields` lines of
//   token ":" OWS value OWS CRLF with values of printable ASCII or tabs,
//   at most one Content-Length (digits only) and one Host, no Transfer-Encoding, Expect or
//   Upgrade, and a Connection field, if any, that is exactly "close" or "keep-alive".
// A plain head within max_header_bytes therefore passes every check of
// auth::check_request_headers by construction (field count, token names, values without CR, LF
// or NUL, one decimal Content-Length, no Transfer-Encoding, one Host, total size): the session
// does not run those checks again on it (http_test checks the claim on the accepted forms).
// Then `fields` holds every field (views into `raw`, values trimmed) in order; otherwise the
// contents of `fields` and `out` are unspecified.
bool parse_plain_head(std::string_view raw, size_t max_fields, std::vector<header_view>& fields,
                      plain_head& out);

// The same straight from the bytes read so far (`buffered`: a head, perhaps its body and the next
// request), without finding the head's end first: the head's size through its blank line when
// `buffered` starts with a complete plain head, else 0 (not plain, or not all there yet: the
// caller then finds the end and lets Beast read it, as any other head). `fields` and `out` as
// above.
size_t parse_buffered_plain_head(std::string_view buffered, size_t max_fields,
                                 std::vector<header_view>& fields, plain_head& out);

// Where the head in `buffered` ends: the offset of its first "\r\n\r\n", or npos; the same as
// buffered.find("\r\n\r\n"), looking at 16 bytes per step for the CRs.
size_t find_head_end(std::string_view buffered);

}  // namespace moat::http

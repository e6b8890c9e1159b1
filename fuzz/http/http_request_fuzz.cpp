// libFuzzer: the HTTP request path as the gateway parses it. Beast's request parser with the
// gateway's limits, fed in two pieces (split point from the first byte, as a slow client
// would), then the edge checks on the parsed header and the raw header block, and log scrubbing
// of the whole input. Nothing may crash, hang or read out of bounds.
// Then the gateway's fast path for plain request heads (http/request_head): whatever it accepts
// must pass the edge checks (the session skips them for a plain head) and must read, through
// Beast, as the same method, target and fields in order; a disagreement traps. So does a head
// end found other than where find() finds it, or a parse that reads on into the bytes after the
// head and comes out otherwise, or a parse straight from the buffer that disagrees with the head
// alone.
#include <algorithm>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/edge_guard.h"
#include "http/request_head.h"

namespace http = boost::beast::http;

namespace {

// The plain-head property on the head of `all` (through its first blank line), if it has one.
void check_plain_head(std::string_view all) {
  const auto end = all.find("\r\n\r\n");
  if (moat::http::find_head_end(all) != end) __builtin_trap();  // the session's search
  if (end == std::string_view::npos) {
    // No head end buffered yet: the parse straight from the buffer says so (0), reading nothing
    // past the bytes it was given.
    std::vector<moat::http::header_view> fields;
    moat::http::plain_head head;
    if (moat::http::parse_buffered_plain_head(all, 100, fields, head) != 0) __builtin_trap();
    return;
  }
  const std::string_view raw = all.substr(0, end + 4);
  std::vector<moat::http::header_view> fields;
  moat::http::plain_head head;
  const bool accepted =
      raw.size() <= 16 * 1024 && moat::http::parse_plain_head(raw, 100, fields, head);
  // The session's parse straight from the buffer, whose scans read on into the rest of `all`
  // (the buffered body): the head's size exactly when the head alone is plain (within the size
  // limit above), whatever follows it, and then the same head and fields.
  std::vector<moat::http::header_view> buffered_fields;
  moat::http::plain_head buffered;
  const size_t n = moat::http::parse_buffered_plain_head(all, 100, buffered_fields, buffered);
  if (raw.size() <= 16 * 1024 && n != (accepted ? raw.size() : 0)) __builtin_trap();
  if (!accepted) return;
  if (buffered.method != head.method || buffered.target != head.target ||
      buffered.content_length != head.content_length || buffered.keep_alive != head.keep_alive ||
      buffered_fields.size() != fields.size()) {
    __builtin_trap();
  }
  for (size_t i = 0; i < fields.size(); ++i) {
    if (buffered_fields[i].name != fields[i].name || buffered_fields[i].value != fields[i].value) {
      __builtin_trap();
    }
  }
  // The X-Request-Id picked up on the way is the first such field, as request::header finds it.
  std::string_view first_id;
  for (const auto& f : fields) {
    const auto same = [](char a, char b) {
      return std::tolower(static_cast<unsigned char>(a)) == b;
    };
    if (f.name.size() == 12 && std::equal(f.name.begin(), f.name.end(), "x-request-id", same)) {
      first_id = f.value;
      break;
    }
  }
  if (head.request_id.data() != first_id.data() || head.request_id != first_id) __builtin_trap();

  std::vector<moat::auth::header_view> guard;
  for (const auto& f : fields) guard.push_back({f.name, f.value});
  if (!moat::auth::check_request_headers(guard, raw, {.max_count = 100, .max_bytes = 16 * 1024})
           .ok) {
    __builtin_trap();
  }
  http::request_parser<http::empty_body> beast_head;
  beast_head.header_limit(16 * 1024);
  beast_head.skip(true);  // the head only: a plain head's body is read separately
  boost::beast::error_code ec;
  beast_head.put(boost::asio::buffer(raw.data(), raw.size()), ec);
  if (ec || !beast_head.is_header_done()) __builtin_trap();
  const auto& req = beast_head.get();
  if (req.method_string() != head.method || req.target() != head.target) __builtin_trap();
  if (req.keep_alive() != head.keep_alive) __builtin_trap();
  // Beast files a repeated name right after its earlier ones, so compare the fields grouped by
  // name (case-insensitive), each name's values in arrival order.
  auto lower = [](std::string_view v) {
    std::string out(v);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  using field = std::pair<std::string, std::string_view>;
  std::vector<field> plain, beast;
  for (const auto& f : fields) plain.emplace_back(lower(f.name), f.value);
  for (const auto& f : req) beast.emplace_back(lower(f.name_string()), f.value());
  auto by_name = [](const field& a, const field& b) { return a.first < b.first; };
  std::stable_sort(plain.begin(), plain.end(), by_name);
  std::stable_sort(beast.begin(), beast.end(), by_name);
  if (plain != beast) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t split = data[0] % (size);
  const std::string_view all(reinterpret_cast<const char*>(data + 1), size - 1);

  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(64 * 1024);
  boost::beast::error_code ec;
  std::size_t used = 0;
  // Beast keeps no copy of bytes it did not consume: offer them again with the next piece, as
  // a session's flat buffer would.
  auto feed = [&](std::size_t end) {
    while (used < end && !ec && !parser.is_done()) {
      const std::size_t n = parser.put(boost::asio::buffer(all.data() + used, end - used), ec);
      if (ec == http::error::need_more) {
        ec = {};
        return;
      }
      if (n == 0) return;
      used += n;
    }
  };
  feed(std::min(split, all.size()));
  feed(all.size());
  if (!ec && parser.is_header_done()) {
    std::vector<moat::auth::header_view> headers;
    for (const auto& f : parser.get()) headers.push_back({f.name_string(), f.value()});
    const auto end = all.find("\r\n\r\n");
    (void)moat::auth::check_request_headers(headers, end == std::string_view::npos ? all : all.substr(0, end + 4));
  }
  (void)moat::auth::scrub_secrets(all);
  check_plain_head(all);
  return 0;
}

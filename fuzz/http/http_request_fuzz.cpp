// libFuzzer: the HTTP request path as the gateway parses it. Beast's request parser with the
// gateway's limits, fed in two pieces (split point from the first byte, as a slow client
// would), then the edge checks on the parsed header and the raw header block, and log scrubbing
// of the whole input. Nothing may crash, hang or read out of bounds.
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "auth/edge_guard.h"

namespace http = boost::beast::http;

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
  return 0;
}

#include "http/wire.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <random>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace moat::http {

namespace {

uint64_t seed() {
  std::random_device rd;
  const uint64_t s = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return s != 0 ? s : 1;
}

// splitmix64 per thread: ids must be unique-ish and cheap, not unpredictable. The state is
// constant-initialized and seeded on first use: a thread_local with a dynamic initializer is
// reached through its init function and guard on every access.
uint64_t next_random() {
  thread_local uint64_t state = 0;
  if (state == 0) [[unlikely]]
    state = seed();  // (the sequence passes 0 once in 2^64 draws)
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

std::string error_json(std::string_view message, std::string_view type) {
  std::string body = R"({"error":{"message":")";
  body.append(message)
      .append(R"(","type":")")
      .append(type)
      .append(R"(","param":null,"code":null}})");
  return body;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

void append_response_head(std::string& out, const response& res, std::string_view request_id,
                          size_t content_length, bool keep_alive) {
  // Written through a pointer into room made once: each std::string::append checks the capacity
  // and calls memcpy again, a dozen times per head. `room` covers every literal below (the longer
  // of each alternative) and 20 digits per number.
  static constexpr std::string_view status_prefix = "HTTP/1.1 ";
  static constexpr std::string_view server_and_type = "\r\nServer: moat\r\nContent-Type: ";
  static constexpr std::string_view chunked =
      "\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache";
  static constexpr std::string_view length = "\r\nContent-Length: ";
  static constexpr std::string_view id_field = "\r\nx-request-id: ";
  static constexpr std::string_view keep = "\r\nConnection: keep-alive\r\n\r\n";
  static constexpr std::string_view close = "\r\nConnection: close\r\n\r\n";
  static constexpr size_t digits = 20;
  static constexpr size_t fixed = status_prefix.size() + digits + 1 + server_and_type.size() +
                                  std::max(chunked.size(), length.size() + digits) +
                                  id_field.size() + std::max(keep.size(), close.size());
  const std::string_view reason = reason_phrase(res.status);
  size_t room = fixed + reason.size() + res.content_type.size() + request_id.size();
  for (const auto& h : res.headers) room += 4 + h.name.size() + h.value.size();

  const size_t start = out.size();
  out.resize(start + room);
  char* const begin = out.data() + start;
  char* p = begin;
  const auto put = [&p](std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  };
  const auto put_uint = [&p](uint64_t v) { p = std::to_chars(p, p + digits, v).ptr; };

  put(status_prefix);
  put_uint(static_cast<uint64_t>(res.status));
  *p++ = ' ';
  put(reason);
  put(server_and_type);
  put(res.content_type);
  if (res.stream) {
    put(chunked);
  } else {
    put(length);
    put_uint(content_length);
  }
  if (!request_id.empty()) {
    put(id_field);
    put(request_id);
  }
  for (const auto& h : res.headers) {
    put("\r\n");
    put(h.name);
    put(": ");
    put(h.value);
  }
  put(keep_alive ? keep : close);
  out.resize(start + static_cast<size_t>(p - begin));
}

void append_chunk_size(std::string& out, size_t size) {
  if (size == 0) return;
  char buf[20];
  char* p = std::to_chars(buf, buf + 16, size, 16).ptr;
  *p++ = '\r';
  *p++ = '\n';
  out.append(buf, p);
}

bool is_sane_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void assign_request_id(std::string& out) {
  // 16 hex digits, one per 4 bits of one draw, 8 at a time: each 32-bit half is spread to one
  // nibble per byte, and each byte becomes '0'-'9' or 'a'-'f' with two adds (a nibble of 10 or
  // more carries into bit 4 when 6 is added). The digits come out least significant first: a
  // random id does not mind.
  const auto hex8 = [](uint64_t x) {  // x < 2^32
    x = (x | (x << 16)) & 0x0000ffff0000ffffull;
    x = (x | (x << 8)) & 0x00ff00ff00ff00ffull;
    x = (x | (x << 4)) & 0x0f0f0f0f0f0f0f0full;
    const uint64_t letter = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
    return x + 0x3030303030303030ull + letter * ('a' - '0' - 10);
  };
  const uint64_t v = next_random();
  const uint64_t words[2] = {hex8(v & 0xffffffffull), hex8(v >> 32)};
  out.resize(16);
  std::memcpy(out.data(), words, 16);
}

std::string make_request_id() {
  std::string id;
  assign_request_id(id);
  return id;
}

void append_random_alnum(std::string& out, size_t length) {
  // Written 16 at a time into room rounded up to 16 (no copy of a variable length per block),
  // then cut to `length`.
  const size_t at = out.size();
  out.resize(at + ((length + 15) & ~size_t{15}));
  // Through a local pointer: a store via out[i] may alias the string's own fields (char), so
  // the compiler reloaded its size and data for every character.
  char* const text = out.data() + at;
  // One character per random byte, from its low 6 bits: 62 characters, then the first two
  // again (62 -> 'A', 63 -> 'B'), 16 at a time (two draws).
  for (size_t i = 0; i < length; i += 16) {
    const uint64_t draws[2] = {next_random(), next_random()};
#if defined(__SSE2__)
    // The alphabet's three runs by compares: 'A' + b, then 'a' - 26 + b from 26, '0' - 52 + b
    // from 52, 'A' - 62 + b from 62 (signed compares: b is 0..63).
    const __m128i b =
        _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(draws)), _mm_set1_epi8(63));
    const auto from = [&b](int first, int step) {
      return _mm_and_si128(_mm_cmpgt_epi8(b, _mm_set1_epi8(static_cast<char>(first - 1))),
                           _mm_set1_epi8(static_cast<char>(step)));
    };
    __m128i offset = _mm_add_epi8(_mm_set1_epi8('A'), from(26, 'a' - 26 - 'A'));
    offset = _mm_add_epi8(offset, from(52, ('0' - 52) - ('a' - 26)));
    offset = _mm_add_epi8(offset, from(62, ('A' - 62) - ('0' - 52)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(text + i), _mm_add_epi8(b, offset));
#else
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789AB";
    unsigned char bytes[16];
    std::memcpy(bytes, draws, 16);
    for (size_t k = 0; k < 16; ++k) text[i + k] = alphabet[bytes[k] & 63];
#endif
  }
  out.resize(at + length);
}

std::string random_alnum(size_t length) {
  std::string out;
  append_random_alnum(out, length);
  return out;
}

}  // namespace moat::http

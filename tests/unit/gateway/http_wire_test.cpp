// The HTTP layer's pure functions, no server: the plain request-head parser (against Beast, which
// reads every other form) and the wire helpers (request ids, response heads, chunk framing).
#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "auth/edge_guard.h"
#include "http/message.h"
#include "http/request_head.h"
#include "http/wire.h"

namespace {

namespace net = boost::asio;
namespace bhttp = boost::beast::http;
using namespace moat;

// A response head only asks whether there is a stream (chunked) or a length.
class no_bytes_stream : public http::stream_source {
 public:
  void pull(next_fn next) override { next({}, true); }
};

TEST(request_head, plain_form_is_read_and_everything_else_is_left_to_beast) {
  std::vector<http::header_view> fields;
  http::plain_head head;
  ASSERT_TRUE(http::parse_plain_head(
      "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a:1\r\nContent-Length:  12 \r\n"
      "Authorization: Bearer k\tey\r\nEmpty:\r\nConnection: Close\r\n\r\n",
      100, fields, head));
  EXPECT_EQ(head.method, "POST");
  EXPECT_EQ(head.target, "/v1/chat/completions?x=1");
  EXPECT_EQ(head.content_length, 12u);
  EXPECT_FALSE(head.keep_alive);
  ASSERT_EQ(fields.size(), 5u);
  EXPECT_EQ(fields[1].name, "Content-Length");
  EXPECT_EQ(fields[1].value, "12");
  EXPECT_EQ(fields[2].value, "Bearer k\tey");
  EXPECT_EQ(fields[3].value, "");

  EXPECT_EQ(head.request_id.data(), nullptr);  // no X-Request-Id

  // The first X-Request-Id, in any case, is picked up as request::header would find it.
  ASSERT_TRUE(
      http::parse_plain_head("GET / HTTP/1.1\r\nContent-Type: x\r\nx-REQUEST-id:  abc-1 \r\n"
                             "X-Request-Id: second\r\n\r\n",
                             100, fields, head));
  EXPECT_EQ(head.request_id, "abc-1");
  ASSERT_TRUE(http::parse_plain_head("GET / HTTP/1.1\r\nX-Request-Id:\r\nX-Request-Id: b\r\n\r\n",
                                     100, fields, head));
  EXPECT_NE(head.request_id.data(), nullptr);
  EXPECT_EQ(head.request_id, "");
  ASSERT_TRUE(
      http::parse_plain_head("GET / HTTP/1.1\r\nX-Request-Ix: a\r\n\r\n", 100, fields, head));
  EXPECT_EQ(head.request_id.data(), nullptr);

  ASSERT_TRUE(http::parse_plain_head("GET / HTTP/1.1\r\n\r\n", 100, fields, head));
  EXPECT_TRUE(head.keep_alive);
  EXPECT_EQ(head.content_length, 0u);
  EXPECT_TRUE(fields.empty());

  const char* not_plain[] = {
      "GET / HTTP/1.0\r\n\r\n",                    // another version
      "GET  / HTTP/1.1\r\n\r\n",                   // two spaces
      "GET / HTTP/1.1 \r\n\r\n",                   // trailing space
      "G(T / HTTP/1.1\r\n\r\n",                    // not a token
      "GET /\x7f HTTP/1.1\r\n\r\n",                // target byte
      "\r\nGET / HTTP/1.1\r\n\r\n",                // leading blank line
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",        // space before ':'
      "GET / HTTP/1.1\r\nHost x\r\n\r\n",          // no ':'
      "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n",  // obs-text
      "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",         // bare CR
      "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n",
      "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
      "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
      "GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\n",  // no blank line
  };
  for (const char* raw : not_plain)
    EXPECT_FALSE(http::parse_plain_head(raw, 100, fields, head)) << raw;
  EXPECT_FALSE(
      http::parse_plain_head("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 100, fields, head));

  // Values are checked 8 bytes at a time: a tab anywhere is fine, a DEL, control or non-ASCII
  // byte anywhere is not, whatever its offset within those words.
  for (size_t at = 0; at < 20; ++at) {
    for (const char odd : {'\t', '\x7f', '\x01', '\x80', '\xff'}) {
      std::string value(24, 'v');
      value[at] = odd;
      const std::string raw = "GET / HTTP/1.1\r\nX: " + value + "\r\n\r\n";
      EXPECT_EQ(http::parse_plain_head(raw, 100, fields, head), odd == '\t')
          << "byte " << static_cast<int>(static_cast<unsigned char>(odd)) << " at " << at;
    }
  }

  // Names, targets and values are scanned 16 bytes at a time: the byte that ends or breaks one is
  // found at every offset of a long run, and the token characters outside letters, digits and
  // '-' still pass in names.
  for (size_t at = 0; at < 40; ++at) {
    for (const char odd : {'^', '_', '~', '!', '@', '[', '{', ' ', '\x7f', '\x80', '\x01'}) {
      std::string name(44, 'N');
      name[at] = odd;
      const bool token = odd == '^' || odd == '_' || odd == '~' || odd == '!';
      EXPECT_EQ(
          http::parse_plain_head("GET / HTTP/1.1\r\n" + name + ": v\r\n\r\n", 100, fields, head),
          token)
          << "name byte " << static_cast<int>(static_cast<unsigned char>(odd)) << " at " << at;
      std::string target = "/" + std::string(43, 't');
      target[at + 1] = odd;
      const bool visible = odd != ' ' && odd != '\x7f' && odd != '\x80' && odd != '\x01';
      EXPECT_EQ(http::parse_plain_head("GET " + target + " HTTP/1.1\r\n\r\n", 100, fields, head),
                visible)
          << "target byte " << static_cast<int>(static_cast<unsigned char>(odd)) << " at " << at;
      std::string value(44, 'v');
      value[at] = odd;
      const bool plain = odd != '\x7f' && odd != '\x80' && odd != '\x01';
      EXPECT_EQ(http::parse_plain_head("GET / HTTP/1.1\r\nX-Long-Field-Name: " + value + "\r\n\r\n",
                                       100, fields, head),
                plain)
          << "value byte " << static_cast<int>(static_cast<unsigned char>(odd)) << " at " << at;
    }
  }
  // The special fields are known in any case, and only by their exact name: a token byte that
  // case folding moves ('^' to '~', '_' to DEL) never turns a name into one of them.
  ASSERT_TRUE(
      http::parse_plain_head("GET / HTTP/1.1\r\ncOnTeNt-LeNgTh: 42\r\n\r\n", 100, fields, head));
  EXPECT_EQ(head.content_length, 42u);
  EXPECT_FALSE(http::parse_plain_head("GET / HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\n\r\n", 100,
                                      fields, head));
  EXPECT_FALSE(
      http::parse_plain_head("GET / HTTP/1.1\r\nHOST: a\r\nhost: b\r\n\r\n", 100, fields, head));
  ASSERT_TRUE(http::parse_plain_head(
      "GET / HTTP/1.1\r\ncontent^length: 42\r\nTransfer_Encoding: x\r\n\r\n", 100, fields, head));
  EXPECT_EQ(head.content_length, 0u);
  ASSERT_TRUE(
      http::parse_plain_head("GET / HTTP/1.1\r\nConnection: CLOSE\r\n\r\n", 100, fields, head));
  EXPECT_FALSE(head.keep_alive);

  // The session skips auth::check_request_headers for plain heads: each accepted form passes it.
  const char* plain[] = {
      "POST /v1/chat/completions HTTP/1.1\r\nHost: a:1\r\nContent-Length: 12\r\nContent-Type: "
      "application/json\r\n"
      "Authorization: Bearer k\tey\r\nX-Empty:\r\nConnection: keep-alive\r\n\r\n",
      "GET /health HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09az: v a l u e ~\r\nContent-Length: 000\r\n\r\n",
  };
  for (const char* raw : plain) {
    ASSERT_TRUE(http::parse_plain_head(raw, 100, fields, head)) << raw;
    std::vector<auth::header_view> guard;
    for (const auto& f : fields) guard.push_back({f.name, f.value});
    const auto verdict = auth::check_request_headers(
        guard, {}, {.max_count = 100, .max_bytes = std::string_view(raw).size()});
    EXPECT_TRUE(verdict.ok) << raw << ": " << verdict.reason;
  }
  EXPECT_FALSE(http::parse_plain_head("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", 1, fields, head));
}

TEST(request_head, bytes_after_the_head_change_nothing) {
  // The session parses straight from its buffer, and the scans' 16-byte steps read on into the
  // buffered body: the result, fields included, is the same as for the head alone, whatever the
  // body holds (CRs, non-ASCII, more head-like lines) and wherever a head's odd byte sits.
  std::vector<std::string> heads = {
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: "
      "application/json\r\nAuthorization: Bearer unused\r\nContent-Length: 150\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nX: \r\n\r\n",
      "GET / HTTP/1.1\r\nX:   v  \t\r\n\r\n",
      "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
      "GET / HTTP/1.1\r\nHost x\r\n\r\n",
      "GET / HTTP/1.0\r\n\r\n",
  };
  for (size_t at = 0; at < 20; ++at) {
    for (const char odd : {'\t', '\x7f', '\x01', '\x80', ' ', '_'}) {
      std::string line(20, 'v');
      line[at] = odd;
      heads.push_back("GET /" + line + " HTTP/1.1\r\n" + line + ": " + line + "\r\n\r\n");
    }
  }
  const std::string bodies[] = {"", "{", std::string(40, '\r'), std::string("\x80\xff\x01") + "abc",
                                "X: y\r\nZ: w\r\n\r\n" + std::string(30, 'z')};
  for (const auto& raw : heads) {
    std::vector<http::header_view> alone_fields;
    http::plain_head alone;
    const bool plain = http::parse_plain_head(raw, 100, alone_fields, alone);
    // The session's parse straight from its buffer: the head's size for a plain head with
    // whatever follows it, 0 otherwise, and 0 for every cut short of the blank line (each cut in
    // a buffer of its own exact size, so that ASan sees a read past it).
    for (const auto& body : bodies) {
      const std::string buffered = raw + body;
      std::vector<http::header_view> fields;
      http::plain_head head;
      ASSERT_EQ(http::parse_buffered_plain_head(buffered, 100, fields, head),
                plain ? raw.size() : 0u)
          << raw;
      if (plain) {
        EXPECT_EQ(head.method, alone.method);
        EXPECT_EQ(head.target, alone.target);
        EXPECT_EQ(head.content_length, alone.content_length);
        EXPECT_EQ(head.keep_alive, alone.keep_alive);
        ASSERT_EQ(fields.size(), alone_fields.size()) << raw;
        for (size_t i = 0; i < fields.size(); ++i) {
          EXPECT_EQ(fields[i].name, alone_fields[i].name);
          EXPECT_EQ(fields[i].value, alone_fields[i].value);
        }
      }
    }
    for (size_t cut = 0; cut < raw.size(); ++cut) {
      const auto bytes = std::make_unique<char[]>(cut + 1);
      std::memcpy(bytes.get(), raw.data(), cut);
      std::vector<http::header_view> fields;
      http::plain_head head;
      EXPECT_EQ(
          http::parse_buffered_plain_head(std::string_view(bytes.get(), cut), 100, fields, head),
          0u)
          << raw << " cut at " << cut;
    }
  }
}

TEST(request_head, find_head_end_is_the_first_blank_line) {
  // Against string_view::find on seeded random bytes rich in CR and LF, at every length and
  // alignment the 16-byte steps meet (a blank line across a step boundary, at the very end, cut
  // short by the end).
  std::mt19937 rng(11);
  const char alphabet[] = "\r\n\r\nab";
  size_t found = 0;
  for (int t = 0; t < 20000; ++t) {
    std::string s(rng() % 70, 'x');
    for (char& c : s) c = alphabet[rng() % (t % 3 == 0 ? 6 : 3)];
    const size_t expected = std::string_view(s).find("\r\n\r\n");
    ASSERT_EQ(http::find_head_end(s), expected) << t;
    found += expected != std::string_view::npos;
  }
  EXPECT_GT(found, 1000u);  // both outcomes are exercised
  EXPECT_EQ(http::find_head_end(""), std::string_view::npos);
  EXPECT_EQ(http::find_head_end("\r\n\r"), std::string_view::npos);
  EXPECT_EQ(http::find_head_end("GET / HTTP/1.1\r\nHost: x\r\n\r\nbody\r\n\r\n"), 23u);
}

// Differential: mutated heads (seeded, repeatable). Whatever the plain parser accepts, Beast must
// read the same way (method, target, fields in order with the same trimmed values, length,
// keep-alive) and the edge checks must pass; what it declines still goes to Beast, unchanged.
TEST(request_head, what_the_plain_parser_accepts_beast_reads_the_same_way) {
  const std::string seeds[] = {
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 96\r\n"
      "Content-Type: application/json\r\nAuthorization: Bearer unused\r\n\r\n",
      "GET /v1/models?x=1 HTTP/1.1\r\nhost: a\r\nConnection: close\r\nX-Request-Id: abc\r\n\r\n",
      "HEAD /health HTTP/1.1\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n"};
  const std::string alphabet =
      std::string(" :\t\r\nAa0,;=/?%\"\\\x7f\x80\x01", 19) + std::string(1, '\0');
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string raw = seeds[iter % 3];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % (raw.size() - 4);  // the final blank line stays
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          raw[at] = c;
          break;
        case 1:
          raw.insert(raw.begin() + static_cast<std::ptrdiff_t>(at), c);
          break;
        default:
          raw.erase(at, 1);
          break;
      }
    }
    const size_t end = raw.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    raw.resize(end + 4);
    std::vector<http::header_view> fields;
    http::plain_head head;
    if (!http::parse_plain_head(raw, 100, fields, head)) continue;
    ++accepted;
    bhttp::request_parser<bhttp::empty_body> parser;
    parser.body_limit(1u << 20);
    boost::system::error_code ec;
    parser.put(net::buffer(raw), ec);
    ASSERT_TRUE(!ec || ec == bhttp::error::need_more) << ec.message() << " for " << raw;
    ASSERT_TRUE(parser.is_header_done()) << raw;
    const auto& msg = parser.get();
    EXPECT_EQ(msg.method_string(), head.method) << raw;
    EXPECT_EQ(msg.target(), head.target) << raw;
    EXPECT_EQ(msg.version(), 11u) << raw;
    EXPECT_EQ(msg.keep_alive(), head.keep_alive) << raw;
    EXPECT_EQ(parser.content_length().value_or(0), head.content_length) << raw;
    size_t i = 0;
    for (const auto& f : msg) {
      ASSERT_LT(i, fields.size()) << raw;
      EXPECT_EQ(f.name_string(), fields[i].name) << raw;
      EXPECT_EQ(f.value(), fields[i].value) << raw;
      ++i;
    }
    EXPECT_EQ(i, fields.size()) << raw;
    std::vector<auth::header_view> guard;
    for (const auto& f : fields) guard.push_back({f.name, f.value});
    EXPECT_TRUE(
        auth::check_request_headers(guard, raw, {.max_count = 100, .max_bytes = raw.size()}).ok)
        << raw;
  }
  EXPECT_GT(accepted, 1000);  // the mutations must leave many heads plain, or this tests nothing
}

TEST(wire, request_id_rules) {
  EXPECT_TRUE(http::is_sane_request_id("a"));
  EXPECT_TRUE(http::is_sane_request_id("A-z_0.9"));
  EXPECT_TRUE(http::is_sane_request_id(std::string(128, 'x')));
  EXPECT_FALSE(http::is_sane_request_id(std::string(129, 'x')));
  EXPECT_FALSE(http::is_sane_request_id(""));
  EXPECT_FALSE(http::is_sane_request_id("a b"));
  EXPECT_FALSE(http::is_sane_request_id("a\r\nx: y"));
  EXPECT_FALSE(http::is_sane_request_id("ä"));
  EXPECT_NE(http::make_request_id(), http::make_request_id());
  const auto r = http::random_alnum(24);
  EXPECT_EQ(r.size(), 24u);
  for (char c : r) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)));
  // Appended after a prefix, at lengths around the 16 characters written per step (two draws).
  for (size_t length : {0, 1, 9, 10, 11, 15, 16, 17, 20, 24, 31, 32, 33, 100}) {
    std::string id = "chatcmpl-";
    http::append_random_alnum(id, length);
    ASSERT_EQ(id.size(), 9 + length);
    EXPECT_EQ(id.substr(0, 9), "chatcmpl-");
    for (size_t i = 9; i < id.size(); ++i)
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(id[i]))) << id;
  }
  EXPECT_NE(http::random_alnum(24), http::random_alnum(24));
  // Every random byte's 6 bits are used: all 62 characters turn up in 1000 (a draw reused or
  // skipped would narrow them; missing one by chance has odds near 1e-5).
  const std::string many = http::random_alnum(1000);
  EXPECT_EQ(std::set<char>(many.begin(), many.end()).size(), 62u);
}

TEST(wire, made_request_ids_are_16_hex_digits_from_every_bit_of_a_draw) {
  // Each position takes every hex digit within 1000 ids (a nibble written twice, or one left
  // out, would fix or narrow a position; missing a digit by chance has odds near 1e-25), and
  // 1000 ids never repeat. The id reuses the string's room.
  std::string id;
  std::vector<std::set<char>> seen(16);
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    http::assign_request_id(id);
    ASSERT_EQ(id.size(), 16u);
    for (size_t k = 0; k < 16; ++k) {
      const char c = id[k];
      ASSERT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << id;
      seen[k].insert(c);
    }
    ids.insert(id);
    EXPECT_TRUE(http::is_sane_request_id(id));
  }
  for (size_t k = 0; k < 16; ++k) EXPECT_EQ(seen[k].size(), 16u) << "position " << k;
  EXPECT_EQ(ids.size(), 1000u);
}

// The head as plain appends would write it: what append_response_head must produce, written
// into room it makes once.
std::string reference_head(const http::response& res, std::string_view id, size_t length,
                           bool keep) {
  std::string h = "HTTP/1.1 " + std::to_string(res.status) + " " +
                  std::string(http::reason_phrase(res.status)) +
                  "\r\nServer: moat\r\nContent-Type: " + std::string(res.content_type);
  h += res.stream ? "\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache"
                  : "\r\nContent-Length: " + std::to_string(length);
  if (!id.empty()) h += "\r\nx-request-id: " + std::string(id);
  for (const auto& f : res.headers) h += "\r\n" + f.name + ": " + f.value;
  return h + (keep ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n");
}

TEST(wire, response_head_matches_plain_appends_for_every_shape) {
  std::mt19937 rng(7);
  const int statuses[] = {200, 404, 429, 503, 999, 100};
  for (int i = 0; i < 500; ++i) {
    http::response res;
    res.status = statuses[i % 6];
    res.content_type = i % 3 ? "application/json" : "text/event-stream; charset=utf-8";
    if (i % 4 == 0) res.stream = std::make_shared<no_bytes_stream>();
    for (int h = 0; h < i % 4; ++h) {
      res.headers.push_back({std::string(1 + rng() % 40, 'n'), std::string(rng() % 300, 'v')});
    }
    const std::string id = i % 5 ? std::string(1 + rng() % 128, 'r') : "";
    const size_t length = i % 7 ? rng() : SIZE_MAX;
    const bool keep = i % 2;
    std::string out = i % 3 ? "" : "previous bytes";  // appends after what is there
    const std::string before = out;
    http::append_response_head(out, res, id, length, keep);
    EXPECT_EQ(out, before + reference_head(res, id, length, keep)) << "case " << i;
  }
}

TEST(wire, response_head_and_chunks) {
  http::response res;
  res.status = 429;
  res.headers.push_back({"Retry-After", "1"});
  std::string out;
  http::append_response_head(out, res, "rid", 12, true);
  EXPECT_EQ(out,
            "HTTP/1.1 429 Too Many Requests\r\nServer: moat\r\nContent-Type: application/json\r\n"
            "Content-Length: 12\r\nx-request-id: rid\r\nRetry-After: 1\r\n"
            "Connection: keep-alive\r\n\r\n");
  out.clear();
  http::append_chunk_size(out, 26);
  out += std::string(26, 'z');
  out += http::chunk_tail(26, false);
  EXPECT_EQ(out, "1a\r\n" + std::string(26, 'z') + "\r\n");
  out.clear();
  http::append_chunk_size(out, 0);
  out += http::chunk_tail(0, false);
  EXPECT_EQ(out, "");
}

TEST(wire, chunk_in_three_pieces_is_one_chunk) {
  // The session's gather write: size line, the bytes where they lie, tail (with the last chunk),
  // against the chunk written out by hand (the size in lowercase hex, as snprintf writes it).
  for (const size_t n : {0, 1, 9, 15, 16, 17, 255, 256, 4095, 4096, 65537, 1 << 20}) {
    const std::string data(n, 'q');
    for (const bool last : {false, true}) {
      std::string expected = "head";
      if (n != 0) {
        char size_line[24];
        std::snprintf(size_line, sizeof size_line, "%zx\r\n", n);
        expected += size_line + data + "\r\n";
      }
      if (last) expected += http::last_chunk;
      std::string pieces = "head";
      http::append_chunk_size(pieces, n);
      pieces += data;
      pieces += http::chunk_tail(n, last);
      EXPECT_EQ(pieces, expected) << n << " bytes, last " << last;
    }
  }
}

struct cancel_target {
  int cancels = 0;
};

TEST(client_signal, weak_callback_runs_once_for_a_live_target_and_never_for_a_dead_one) {
  auto target = std::make_shared<cancel_target>();
  const auto cancel = [](cancel_target& t) { ++t.cancels; };
  http::client_signal signal;
  signal.on_gone(target, cancel);
  EXPECT_FALSE(signal.gone());
  signal.fire();
  signal.fire();
  EXPECT_TRUE(signal.gone());
  EXPECT_EQ(target->cancels, 1);
  // Registered after the fire: runs at once.
  signal.on_gone(target, cancel);
  EXPECT_EQ(target->cancels, 2);
  EXPECT_EQ(target.use_count(), 1);  // held weakly only

  // A target gone before the client: nothing runs, nothing is kept alive.
  signal.rearm();
  auto dead = std::make_shared<cancel_target>();
  std::weak_ptr<cancel_target> watch = dead;
  signal.on_gone(dead, cancel);
  dead.reset();
  EXPECT_TRUE(watch.expired());
  signal.fire();
  EXPECT_TRUE(signal.gone());

  // Re-armed: the last request's callback is dropped; registering again replaces, in either form.
  signal.rearm();
  signal.on_gone(target, cancel);
  signal.rearm();
  int plain = 0;
  signal.on_gone([&plain] { ++plain; });
  signal.on_gone(target, cancel);  // replaces the std::function
  signal.fire();
  EXPECT_EQ(plain, 0);
  EXPECT_EQ(target->cancels, 3);
  signal.rearm();
  signal.on_gone(target, cancel);
  signal.on_gone([&plain] { ++plain; });  // replaces the weak callback
  signal.fire();
  EXPECT_EQ(plain, 1);
  EXPECT_EQ(target->cancels, 3);
}

}  // namespace

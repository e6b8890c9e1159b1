#include "http/request_head.h"

#include <array>
#include <cstring>

#include "util/ascii.h"

namespace moat::http {

namespace {

// RFC 9110 token characters (method and field names).
constexpr std::array<bool, 256> make_token_table() {
  std::array<bool, 256> table{};
  for (int c = '0'; c <= '9'; ++c) table[static_cast<size_t>(c)] = true;
  for (int c = 'a'; c <= 'z'; ++c) table[static_cast<size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) table[static_cast<size_t>(c)] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) table[static_cast<unsigned char>(c)] = true;
  return table;
}
constexpr std::array<bool, 256> token_char = make_token_table();

bool is_token(char c) {
  return token_char[static_cast<unsigned char>(c)];
}

// Printable ASCII and tab: anything else in a value (obs-text, controls) goes to Beast.
bool plain_value_byte(char c) {
  return (c >= 0x20 && c < 0x7f) || c == '\t';
}

// True when all 8 bytes are printable ASCII (0x20..0x7e), tested at once: no byte below 0x20,
// none with the high bit, no DEL. Each term is the exact "has such a byte" test. A word that
// fails (a tab, or a byte that is not plain) is looked at byte by byte.
bool printable_word(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  constexpr uint64_t ones = 0x0101010101010101ull;
  constexpr uint64_t high = 0x8080808080808080ull;
  const uint64_t del = v ^ (ones * 0x7f);
  const uint64_t below_space = (v - ones * 0x20) & ~v;
  const uint64_t is_del = (del - ones) & ~del;
  return ((v | below_space | is_del) & high) == 0;
}

std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

bool parse_length(std::string_view v, uint64_t& out) {
  if (v.empty() || v.size() > 18) return false;  // 18 digits cannot overflow; longer goes to Beast
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  out = n;
  return true;
}

}  // namespace

bool parse_plain_head(std::string_view raw, size_t max_fields, std::vector<header_view>& fields,
                      plain_head& out) {
  fields.clear();
  out = plain_head{};
  const size_t size = raw.size();
  if (size < 4 || raw.substr(size - 4) != "\r\n\r\n") return false;
  // One pass over the bytes. Every scan below stops at a CR at the latest (CR is neither a token
  // nor a target nor a value byte), and `raw` ends with CRLF CRLF, so none reads past its end.
  const char* const p = raw.data();

  // Request line: METHOD SP target SP HTTP/1.1 CRLF
  size_t i = 0;
  while (is_token(p[i])) ++i;
  if (i == 0 || p[i] != ' ') return false;
  out.method = std::string_view(p, i);
  const size_t target_start = ++i;
  while (p[i] > 0x20 && p[i] < 0x7f) ++i;
  if (i == target_start || p[i] != ' ') return false;
  out.target = std::string_view(p + target_start, i - target_start);
  ++i;
  constexpr std::string_view version = "HTTP/1.1\r\n";
  if (size - i < version.size() || std::string_view(p + i, version.size()) != version) return false;
  i += version.size();

  // Fields, each `token ":" value CRLF`, up to the blank line (the last two bytes of `raw`).
  bool has_length = false;
  bool has_host = false;
  while (i < size - 2) {
    const size_t name_start = i;
    while (is_token(p[i])) ++i;
    const std::string_view name(p + name_start, i - name_start);
    if (name.empty() || p[i] != ':') return false;
    const size_t value_start = ++i;
    // The value runs to its line's CR; anything but printable ASCII or tabs on the way (a bare
    // CR or LF, a control, DEL, obs-text) is not plain. Whole words of printable bytes first.
    while (i + 8 <= size && printable_word(p + i)) i += 8;
    while (plain_value_byte(p[i])) ++i;
    if (p[i] != '\r' || p[i + 1] != '\n') return false;
    const std::string_view value = trim_ows(std::string_view(p + value_start, i - value_start));
    i += 2;
    if (fields.size() == max_fields) return false;
    fields.push_back({name, value});
    // By length first: most fields (Content-Type, Authorization, ...) match none of these.
    switch (name.size()) {
      case 14:  // content-length
        if (util::iequals(name, "content-length")) {
          if (has_length || !parse_length(value, out.content_length)) return false;
          has_length = true;
        }
        break;
      case 17:  // transfer-encoding
        if (util::iequals(name, "transfer-encoding")) return false;
        break;
      case 6:  // expect
        if (util::iequals(name, "expect")) return false;
        break;
      case 7:  // upgrade
        if (util::iequals(name, "upgrade")) return false;
        break;
      case 4:  // host
        if (util::iequals(name, "host")) {
          if (has_host) return false;
          has_host = true;
        }
        break;
      case 10:  // connection
        if (util::iequals(name, "connection")) {
          if (util::iequals(value, "close")) {
            out.keep_alive = false;
          } else if (!util::iequals(value, "keep-alive")) {
            return false;
          }
        }
        break;
      default:
        break;
    }
  }
  return true;
}

}  // namespace moat::http

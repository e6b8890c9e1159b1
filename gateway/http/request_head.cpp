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

bool plain_value(std::string_view value) {
  size_t i = 0;
  while (i + 8 <= value.size() && printable_word(value.data() + i)) i += 8;
  for (; i < value.size(); ++i) {
    if (!plain_value_byte(value[i])) return false;
  }
  return true;
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
  if (raw.size() < 4 || raw.substr(raw.size() - 4) != "\r\n\r\n") return false;

  // Request line: METHOD SP target SP HTTP/1.1
  const size_t line_end = raw.find("\r\n");
  const std::string_view line = raw.substr(0, line_end);
  size_t i = 0;
  while (i < line.size() && is_token(line[i])) ++i;
  if (i == 0 || i >= line.size() || line[i] != ' ') return false;
  out.method = line.substr(0, i);
  const size_t target_start = ++i;
  while (i < line.size() && line[i] > 0x20 && line[i] < 0x7f) ++i;
  if (i == target_start || i >= line.size() || line[i] != ' ') return false;
  out.target = line.substr(target_start, i - target_start);
  if (line.substr(i + 1) != "HTTP/1.1") return false;

  // Fields, up to the blank line (the last two bytes of `raw`).
  bool has_length = false;
  bool has_host = false;
  size_t pos = line_end + 2;
  while (pos < raw.size() - 2) {
    const size_t end = raw.find("\r\n", pos);
    const std::string_view field = raw.substr(pos, end - pos);
    pos = end + 2;
    size_t n = 0;
    while (n < field.size() && is_token(field[n])) ++n;
    if (n == 0 || n >= field.size() || field[n] != ':') return false;
    const std::string_view name = field.substr(0, n);
    std::string_view value = field.substr(n + 1);
    if (!plain_value(value)) return false;
    value = trim_ows(value);
    if (fields.size() == max_fields) return false;
    fields.push_back({name, value});
    if (util::iequals(name, "content-length")) {
      if (has_length || !parse_length(value, out.content_length)) return false;
      has_length = true;
    } else if (util::iequals(name, "transfer-encoding") || util::iequals(name, "expect") ||
               util::iequals(name, "upgrade")) {
      return false;
    } else if (util::iequals(name, "host")) {
      if (has_host) return false;
      has_host = true;
    } else if (util::iequals(name, "connection")) {
      if (util::iequals(value, "close")) {
        out.keep_alive = false;
      } else if (!util::iequals(value, "keep-alive")) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace moat::http

// Checksums and range checks that turn "looks like" into "is": each takes the whole matched text
// and ignores separators, so patterns can stay permissive about spacing.
#include "policy/validators.h"

#include <array>
#include <cmath>
#include <cstdint>

namespace moat::policy {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

std::string digits_of(std::string_view s) {
  std::string d;
  for (char c : s)
    if (is_digit(c)) d.push_back(c);
  return d;
}

// Runs of digits in order ("1990-01-02" -> {"1990","01","02"}).
std::vector<std::string_view> numbers_of(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    if (!is_digit(s[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && is_digit(s[j])) ++j;
    out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

int to_int(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

bool real_date(int y, int m, int d) {
  if (y < 1900 || y > 2100 || m < 1 || m > 12 || d < 1) return false;
  static constexpr std::array<int, 12> days = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (d > days[m - 1]) return false;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return !(m == 2 && d == 29 && !leap);
}

}  // namespace

bool luhn_valid(std::string_view text) {
  const std::string d = digits_of(text);
  if (d.size() < 12 || d.size() > 19) return false;
  int sum = 0;
  bool dbl = false;
  for (size_t i = d.size(); i-- > 0;) {
    int v = d[i] - '0';
    if (dbl) {
      v *= 2;
      if (v > 9) v -= 9;
    }
    sum += v;
    dbl = !dbl;
  }
  // All-same-digit strings pass Luhn only by accident (0000...): not a card.
  bool all_same = true;
  for (char c : d) all_same &= c == d[0];
  return sum % 10 == 0 && !all_same;
}

bool iban_valid(std::string_view text) {
  std::string s;
  for (char c : text) {
    if (c == ' ' || c == '-') continue;
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    s.push_back(c);
  }
  if (s.size() < 15 || s.size() > 34) return false;
  if (!(s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' && is_digit(s[2]) && is_digit(s[3])))
    return false;
  // Move the first four characters to the end, letters become 10..35, and the number mod 97 is 1.
  const std::string r = s.substr(4) + s.substr(0, 4);
  int rem = 0;
  for (char c : r) {
    if (is_digit(c)) {
      rem = (rem * 10 + (c - '0')) % 97;
    } else if (c >= 'A' && c <= 'Z') {
      const int v = c - 'A' + 10;
      rem = (rem * 100 + v) % 97;
    } else {
      return false;
    }
  }
  return rem == 1;
}

bool us_ssn_valid(std::string_view text) {
  const std::string d = digits_of(text);
  if (d.size() != 9) return false;
  const int area = to_int(std::string_view(d).substr(0, 3));
  const int group = to_int(std::string_view(d).substr(3, 2));
  const int serial = to_int(std::string_view(d).substr(5, 4));
  if (area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0) return false;
  // Numbers published as examples (Woolworth's wallet card, the 1938 ad) are not anyone's.
  return d != "078051120" && d != "219099999" && d != "123456789";
}

bool ipv4_valid(std::string_view text) {
  const auto parts = numbers_of(text);
  if (parts.size() != 4) return false;
  for (auto p : parts) {
    if (p.size() > 3 || (p.size() > 1 && p[0] == '0') || to_int(p) > 255) return false;
  }
  // Version-like strings: "1.2.3.4" is both; keep it, a plain IP. Reject all-zero.
  return text != "0.0.0.0";
}

bool ipv6_valid(std::string_view s) {
  // Groups of 1..4 hex digits separated by ':', at most one "::", optional trailing IPv4.
  if (s.size() < 2) return false;
  int groups = 0;
  bool compressed = false;
  size_t i = 0;
  if (s.substr(0, 2) == "::") {
    compressed = true;
    i = 2;
  } else if (s[0] == ':') {
    return false;
  }
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && is_hex(s[j]) && j - i < 5) ++j;
    if (j < s.size() && s[j] == '.') {  // embedded IPv4 ends the address
      if (!ipv4_valid(s.substr(i))) return false;
      groups += 2;
      i = s.size();
      break;
    }
    if (j == i || j - i > 4) return false;
    ++groups;
    i = j;
    if (i == s.size()) break;
    if (s[i] != ':') return false;
    if (i + 1 < s.size() && s[i + 1] == ':') {
      if (compressed) return false;
      compressed = true;
      i += 2;
    } else {
      ++i;
      if (i == s.size()) return false;  // trailing single ':'
    }
  }
  if (compressed) return groups <= 7;
  return groups == 8;
}

bool nanp_phone_valid(std::string_view text) {
  std::string d = digits_of(text);
  if (d.size() == 11 && d[0] == '1') d.erase(0, 1);
  if (d.size() != 10) return false;
  if (d[0] < '2' || d[3] < '2') return false;
  if (d[1] == '1' && d[2] == '1') return false;  // N11 service codes are not area codes
  if (d.substr(3, 3) == "555" && d.substr(6, 2) == "01") return false;  // 555-01xx: fiction
  return true;
}

bool intl_phone_valid(std::string_view text) {
  const std::string d = digits_of(text);
  return d.size() >= 8 && d.size() <= 15;
}

bool high_entropy(std::string_view text) {
  // The value is what follows the last '=' or ':' (the rule matches "key = VALUE").
  const size_t cut = text.find_last_of("=:");
  std::string_view v = cut == std::string_view::npos ? text : text.substr(cut + 1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '"' || v.front() == '\'')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == '"' || v.back() == '\'')) v.remove_suffix(1);
  if (v.size() < 16) return false;
  std::array<int, 256> counts{};
  bool digit = false, alpha = false;
  for (unsigned char c : v) {
    ++counts[c];
    digit |= is_digit(static_cast<char>(c));
    alpha |= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  }
  double h = 0;
  for (int c : counts) {
    if (c == 0) continue;
    const double p = static_cast<double>(c) / static_cast<double>(v.size());
    h -= p * std::log2(p);
  }
  return h >= 3.5 && digit && alpha;
}

bool date_valid(std::string_view text) {
  const auto n = numbers_of(text);
  if (n.size() < 3) return false;
  const auto a = n[n.size() - 3], b = n[n.size() - 2], c = n[n.size() - 1];
  if (a.size() == 4) return real_date(to_int(a), to_int(b), to_int(c));
  if (c.size() == 4) {
    return real_date(to_int(c), to_int(a), to_int(b)) || real_date(to_int(c), to_int(b), to_int(a));
  }
  return false;
}

validator_fn find_validator(std::string_view name) {
  if (name == "luhn") return luhn_valid;
  if (name == "iban") return iban_valid;
  if (name == "us_ssn") return us_ssn_valid;
  if (name == "ipv4") return ipv4_valid;
  if (name == "ipv6") return ipv6_valid;
  if (name == "nanp_phone") return nanp_phone_valid;
  if (name == "intl_phone") return intl_phone_valid;
  if (name == "entropy") return high_entropy;
  if (name == "date") return date_valid;
  return nullptr;
}

std::vector<std::string> validator_names() {
  return {"luhn", "iban", "us_ssn", "ipv4", "ipv6", "nanp_phone", "intl_phone", "entropy", "date"};
}

}  // namespace moat::policy

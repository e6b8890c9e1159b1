// Scalar parsers shared by the config loader and its tests: sizes, listen addresses, and the
// YAML-to-JSON conversion that hands a model's `options:` to its plugin.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "config/config.h"
#include "util/ascii.h"

namespace moat::config {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void append_json_escaped(std::string& out, std::string_view text) {
  out.push_back('"');
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

// YAML 1.2 core schema for plain scalars: null, booleans, integers, floats; else a string.
void append_plain_scalar(std::string& out, const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
    out += "null";
    return;
  }
  if (s == "true" || s == "True" || s == "TRUE") {
    out += "true";
    return;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    out += "false";
    return;
  }
  int64_t i = 0;
  auto [ip, iec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (iec == std::errc() && ip == s.data() + s.size()) {
    out += std::to_string(i);
    return;
  }
  double d = 0;
  auto [dp, dec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (dec == std::errc() && dp == s.data() + s.size() && std::isfinite(d)) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", d);
    out += buf;
    return;
  }
  append_json_escaped(out, s);
}

void append_node(std::string& out, const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      out.push_back('{');
      bool first = true;
      for (const auto& kv : node) {
        if (!first) out.push_back(',');
        first = false;
        append_json_escaped(out, kv.first.Scalar());
        out.push_back(':');
        append_node(out, kv.second);
      }
      out.push_back('}');
      return;
    }
    case YAML::NodeType::Sequence: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : node) {
        if (!first) out.push_back(',');
        first = false;
        append_node(out, item);
      }
      out.push_back(']');
      return;
    }
    case YAML::NodeType::Scalar:
      // yaml-cpp tags a quoted scalar "!" and a plain one "?": quotes force a string.
      if (node.Tag() == "!") {
        append_json_escaped(out, node.Scalar());
      } else {
        append_plain_scalar(out, node.Scalar());
      }
      return;
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      out += "null";
      return;
  }
}

}  // namespace

std::optional<uint64_t> parse_size(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  uint64_t number = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || p == text.data()) return std::nullopt;
  std::string_view unit = trim(text.substr(static_cast<size_t>(p - text.data())));
  struct unit_scale {
    std::string_view name;
    uint64_t scale;
  };
  static constexpr unit_scale units[] = {
      {"", 1},           {"b", 1},           {"k", 1ull << 10},  {"kib", 1ull << 10},
      {"kb", 1000},      {"m", 1ull << 20},  {"mib", 1ull << 20}, {"mb", 1000000},
      {"g", 1ull << 30}, {"gib", 1ull << 30}, {"gb", 1000000000}, {"t", 1ull << 40},
      {"tib", 1ull << 40}, {"tb", 1000000000000ull},
  };
  for (const auto& u : units) {
    if (util::iequals(unit, u.name)) {
      if (number > std::numeric_limits<uint64_t>::max() / u.scale) return std::nullopt;
      return number * u.scale;
    }
  }
  return std::nullopt;
}

std::optional<listen_address> parse_listen(std::string_view text) {
  text = trim(text);
  listen_address out;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    out.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    out.host = std::string(text.substr(0, colon));
    if (out.host.find(':') != std::string::npos) return std::nullopt;  // v6 needs brackets
    port = text.substr(colon + 1);
  }
  if (out.host.empty() || port.empty()) return std::nullopt;
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || p != port.data() + port.size() || value > 65535) return std::nullopt;
  out.port = static_cast<uint16_t>(value);
  return out;
}

std::string yaml_to_json(const YAML::Node& node) {
  std::string out;
  append_node(out, node);
  return out;
}

}  // namespace moat::config

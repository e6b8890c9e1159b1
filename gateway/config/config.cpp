// Loads and validates the YAML config (schema in docs/configuration.md). Each check throws a
// config_error naming file, line and key path, so an operator can fix the file without guessing.
#include "config/config.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace moat::config {

namespace {

// Where a node sits: the file name and a line (1-based) for messages.
class locator {
 public:
  explicit locator(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const YAML::Node& node, const std::string& key,
                         const std::string& message) const {
    throw config_error(fmt::format("{}:{}: {}: {}", file_, line_of(node), key, message));
  }
  std::string where(const YAML::Node& node, const std::string& key) const {
    return fmt::format("{}:{}: {}", file_, line_of(node), key);
  }
  const std::string& file() const { return file_; }

  // yaml-cpp marks are 0-based; an undefined node has none, so the caller passes the parent.
  static int line_of(const YAML::Node& node) {
    const YAML::Mark mark = node.Mark();
    return mark.line < 0 ? 0 : mark.line + 1;
  }

 private:
  std::string file_;
};

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return fmt::format("\"{}\"", node.Scalar());
    default: return "nothing";
  }
}

void expect_map(const locator& loc, const YAML::Node& node, const std::string& key) {
  if (!node.IsMap()) loc.fail(node, key, "expected a map, got " + describe(node));
}

// Refuses keys a section does not know: a typo must not silently fall back to a default.
void check_keys(const locator& loc, const YAML::Node& map, const std::string& key,
                std::initializer_list<std::string_view> known) {
  for (const auto& kv : map) {
    const std::string name = kv.first.Scalar();
    bool found = false;
    for (auto k : known) found = found || k == name;
    if (!found) {
      std::string list;
      for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      loc.fail(kv.first, key.empty() ? name : key + "." + name,
               "unknown key (known: " + list + ")");
    }
  }
}

std::string get_string(const locator& loc, const YAML::Node& node, const std::string& key) {
  if (!node.IsScalar() || node.Scalar().empty()) {
    loc.fail(node, key, "expected a non-empty string, got " + describe(node));
  }
  return node.Scalar();
}

bool get_bool(const locator& loc, const YAML::Node& node, const std::string& key) {
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
  }
  loc.fail(node, key, "expected true or false, got " + describe(node));
}

uint64_t get_uint(const locator& loc, const YAML::Node& node, const std::string& key,
                  uint64_t min, uint64_t max) {
  uint64_t value = 0;
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) {
      if (value < min || value > max) {
        loc.fail(node, key, fmt::format("{} is out of range [{}, {}]", value, min, max));
      }
      return value;
    }
  }
  loc.fail(node, key, "expected a whole number, got " + describe(node));
}

double get_seconds(const locator& loc, const YAML::Node& node, const std::string& key) {
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    double value = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) {
      if (!std::isfinite(value) || value <= 0 || value > 86400.0 * 365) {
        loc.fail(node, key, "expected a number of seconds > 0, got " + s);
      }
      return value;
    }
  }
  loc.fail(node, key, "expected a number of seconds, got " + describe(node));
}

uint64_t get_size(const locator& loc, const YAML::Node& node, const std::string& key,
                  uint64_t min, uint64_t max) {
  if (node.IsScalar()) {
    if (auto v = parse_size(node.Scalar())) {
      if (*v < min || *v > max) {
        loc.fail(node, key, fmt::format("{} bytes is out of range [{}, {}]", *v, min, max));
      }
      return *v;
    }
  }
  loc.fail(node, key,
           "expected a size such as 1048576, 16KiB or 8MiB, got " + describe(node));
}

std::filesystem::path resolve(const std::filesystem::path& dir, const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_relative()) p = dir / p;
  return p.lexically_normal();
}

bool is_plugin_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

void parse_server(const locator& loc, const YAML::Node& node, const std::filesystem::path& dir,
                  server_config& out) {
  expect_map(loc, node, "server");
  check_keys(loc, node, "server",
             {"listen", "threads", "max_body_bytes", "max_header_bytes", "max_headers", "read_timeout_s",
              "idle_timeout_s", "request_timeout_s", "drain_timeout_s", "max_connections", "max_connections_per_ip",
              "tls"});
  if (auto n = node["listen"]) {
    auto addr = parse_listen(get_string(loc, n, "server.listen"));
    if (!addr) loc.fail(n, "server.listen", "expected HOST:PORT, got " + describe(n));
    out.host = addr->host;
    out.port = addr->port;
  }
  if (auto n = node["threads"]) out.threads = get_uint(loc, n, "server.threads", 0, 1024);
  if (auto n = node["max_body_bytes"]) {
    out.max_body_bytes = get_size(loc, n, "server.max_body_bytes", 1024, 1ull << 32);
  }
  if (auto n = node["max_header_bytes"]) {
    out.max_header_bytes =
        static_cast<uint32_t>(get_size(loc, n, "server.max_header_bytes", 1024, 1u << 20));
  }
  if (auto n = node["max_headers"]) {
    out.max_headers = static_cast<uint32_t>(get_uint(loc, n, "server.max_headers", 1, 10000));
  }
  if (auto n = node["read_timeout_s"]) out.read_timeout_s = get_seconds(loc, n, "server.read_timeout_s");
  if (auto n = node["idle_timeout_s"]) out.idle_timeout_s = get_seconds(loc, n, "server.idle_timeout_s");
  if (auto n = node["request_timeout_s"]) {
    out.request_timeout_s = get_seconds(loc, n, "server.request_timeout_s");
  }
  if (auto n = node["drain_timeout_s"]) {
    out.drain_timeout_s = get_seconds(loc, n, "server.drain_timeout_s");
  }
  if (auto n = node["max_connections_per_ip"]) {
    out.max_connections_per_ip =
        static_cast<uint32_t>(get_uint(loc, n, "server.max_connections_per_ip", 0, 1u << 24));
  }
  if (auto n = node["max_connections"]) {
    out.max_connections = static_cast<uint32_t>(get_uint(loc, n, "server.max_connections", 1, 1u << 24));
  }
  if (auto n = node["tls"]) {
    expect_map(loc, n, "server.tls");
    check_keys(loc, n, "server.tls", {"cert", "key", "client_ca", "require_client_cert"});
    tls_config tls;
    if (!n["cert"]) loc.fail(n, "server.tls.cert", "required when server.tls is given");
    if (!n["key"]) loc.fail(n, "server.tls.key", "required when server.tls is given");
    tls.cert = resolve(dir, get_string(loc, n["cert"], "server.tls.cert"));
    tls.key = resolve(dir, get_string(loc, n["key"], "server.tls.key"));
    if (auto ca = n["client_ca"]) tls.client_ca = resolve(dir, get_string(loc, ca, "server.tls.client_ca"));
    if (auto r = n["require_client_cert"]) {
      tls.require_client_cert = get_bool(loc, r, "server.tls.require_client_cert");
    }
    if (tls.require_client_cert && tls.client_ca.empty()) {
      loc.fail(n, "server.tls.client_ca", "required when require_client_cert is true");
    }
    out.tls = std::move(tls);
  }
}

void parse_models(const locator& loc, const YAML::Node& node, const std::filesystem::path& dir,
                  std::vector<model_config>& out) {
  if (!node.IsSequence()) loc.fail(node, "models", "expected a list, got " + describe(node));
  std::set<std::string> names;
  size_t i = 0;
  for (const auto& item : node) {
    const std::string key = fmt::format("models[{}]", i++);
    expect_map(loc, item, key);
    check_keys(loc, item, key, {"name", "backend", "plugin", "max_queue", "options"});
    model_config m;
    m.where = loc.where(item, key);
    if (!item["name"]) loc.fail(item, key + ".name", "required");
    m.name = get_string(loc, item["name"], key + ".name");
    if (!names.insert(m.name).second) {
      loc.fail(item["name"], key + ".name", "duplicate model name \"" + m.name + "\"");
    }
    if (!item["backend"]) loc.fail(item, key + ".backend", "required");
    m.backend = get_string(loc, item["backend"], key + ".backend");
    if (!is_plugin_name(m.backend)) {
      loc.fail(item["backend"], key + ".backend",
               "unknown backend \"" + m.backend + "\" (a plugin name is [a-z0-9_]+)");
    }
    if (auto p = item["plugin"]) m.plugin = resolve(dir, get_string(loc, p, key + ".plugin"));
    if (auto q = item["max_queue"]) {
      m.max_queue = static_cast<uint32_t>(get_uint(loc, q, key + ".max_queue", 1, 1u << 24));
    }
    if (auto o = item["options"]) {
      if (!o.IsNull()) {
        expect_map(loc, o, key + ".options");
        m.options_json = yaml_to_json(o);
      }
    }
    out.push_back(std::move(m));
  }
  if (out.empty()) loc.fail(node, "models", "at least one model is required");
}

}  // namespace

config parse_config(std::string_view yaml_text, const std::filesystem::path& file) {
  const locator loc(file.string());
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    throw config_error(fmt::format("{}:{}: {}", file.string(), e.mark.line + 1, e.msg));
  }
  config cfg;
  cfg.file = file;
  cfg.dir = file.parent_path();
  if (cfg.dir.empty()) cfg.dir = ".";
  if (!root.IsMap()) {
    throw config_error(fmt::format("{}:1: expected a map with server, models, ... at the top",
                                   file.string()));
  }
  check_keys(loc, root, "", {"server", "auth", "models", "policies", "audit", "logging"});
  if (auto s = root["server"]) parse_server(loc, s, cfg.dir, cfg.server);
  if (!root["models"]) {
    throw config_error(fmt::format("{}:1: models: required (a list of models to serve)", file.string()));
  }
  parse_models(loc, root["models"], cfg.dir, cfg.models);
  if (auto l = root["logging"]) {
    expect_map(loc, l, "logging");
    check_keys(loc, l, "logging", {"level"});
    if (auto lv = l["level"]) {
      cfg.logging.level = get_string(loc, lv, "logging.level");
      static constexpr std::string_view levels[] = {"trace", "debug", "info", "warn",
                                                    "error", "critical", "off"};
      bool ok = false;
      for (auto x : levels) ok = ok || x == cfg.logging.level;
      if (!ok) {
        loc.fail(lv, "logging.level",
                 "unknown level \"" + cfg.logging.level +
                     "\" (trace, debug, info, warn, error, critical, off)");
      }
    }
  }
  cfg.auth = root["auth"];
  cfg.policies = root["policies"];
  cfg.audit = root["audit"];
  return cfg;
}

config load_config(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw config_error(fmt::format("{}: cannot open the config file", file.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), file);
}

}  // namespace moat::config

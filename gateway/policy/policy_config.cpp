// The `policies:` list of the config, compiled: rules gathered per direction in list order, Lua
// scripts loaded once here (syntax, top level, the rules they declare). Every error names the
// entry, the key and the line.
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "policy/lua_runtime.h"
#include "policy/policy.h"
#include "policy/policy_internal.h"

namespace moat::policy {

namespace {

std::atomic<uint64_t> next_set_id{1};

std::string where(const YAML::Node& n, const std::string& key) {
  if (!n.IsDefined() || n.Mark().is_null()) return key;
  return key + " (line " + std::to_string(n.Mark().line + 1) + ")";
}

[[noreturn]] void fail(const YAML::Node& n, const std::string& key, const std::string& what) {
  throw policy_error(where(n, key) + ": " + what);
}

std::string scalar(const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar()) fail(n, key, "must be a string");
  return n.as<std::string>();
}

setting to_setting(const YAML::Node& n) {
  setting s;
  if (!n.IsDefined() || n.IsNull()) return s;
  if (n.IsScalar()) {
    const std::string v = n.as<std::string>();
    if (v == "true" || v == "false") {
      s.kind = setting::boolean;
      s.b = v == "true";
      return s;
    }
    try {
      size_t used = 0;
      const double d = std::stod(v, &used);
      if (used == v.size()) {
        s.kind = setting::number;
        s.n = d;
        return s;
      }
    } catch (const std::exception&) {
    }
    s.kind = setting::string;
    s.s = v;
    return s;
  }
  if (n.IsSequence()) {
    s.kind = setting::list;
    for (const auto& item : n) {
      s.keys.emplace_back();
      s.values.push_back(to_setting(item));
    }
    return s;
  }
  s.kind = setting::map;
  for (const auto& kv : n) {
    s.keys.push_back(kv.first.as<std::string>());
    s.values.push_back(to_setting(kv.second));
  }
  return s;
}

uint64_t parse_size(const YAML::Node& n, const std::string& key) {
  // 64MiB, 512KiB, 1GB, or a plain number of bytes.
  std::string v = scalar(n, key);
  uint64_t mult = 1;
  auto ends = [&](const char* suffix, uint64_t m) {
    const std::string s(suffix);
    if (v.size() > s.size() && v.compare(v.size() - s.size(), s.size(), s) == 0) {
      v.resize(v.size() - s.size());
      mult = m;
      return true;
    }
    return false;
  };
  ends("KiB", 1ull << 10) || ends("MiB", 1ull << 20) || ends("GiB", 1ull << 30) || ends("KB", 1000) ||
      ends("MB", 1000000) || ends("GB", 1000000000);
  try {
    size_t used = 0;
    const unsigned long long x = std::stoull(v, &used);
    if (used != v.size()) throw std::invalid_argument("trailing");
    return x * mult;
  } catch (const std::exception&) {
    fail(n, key, "must be a size such as 64MiB");
  }
}

rule parse_rule(const YAML::Node& n, const std::string& key, const std::string& origin, bool pseudonymize) {
  if (!n.IsMap()) fail(n, key, "a rule is a map { name, pattern, action, replace, on }");
  rule r;
  for (const auto& kv : n) {
    const std::string k = kv.first.as<std::string>();
    const std::string sub = key + "." + k;
    if (k == "name") r.name = scalar(kv.second, sub);
    else if (k == "pattern") r.pattern = scalar(kv.second, sub);
    else if (k == "replace") r.replace = scalar(kv.second, sub);
    else if (k == "validate") r.validate = scalar(kv.second, sub);
    else if (k == "label") r.label = scalar(kv.second, sub);
    else if (k == "action") {
      const std::string a = scalar(kv.second, sub);
      if (a == "redact") r.action = rule_action::redact;
      else if (a == "block") r.action = rule_action::block;
      else if (a == "audit") r.action = rule_action::audit;
      else if (a == "pseudonymize") r.action = rule_action::pseudonymize;
      else fail(kv.second, sub, "must be redact, block, audit or pseudonymize, not '" + a + "'");
    } else if (k == "on") {
      r.on = 0;
      const YAML::Node& on = kv.second;
      std::vector<std::string> dirs;
      if (on.IsScalar()) dirs.push_back(on.as<std::string>());
      else if (on.IsSequence()) for (const auto& d : on) dirs.push_back(scalar(d, sub));
      else fail(on, sub, "must be a list of request/response");
      for (const auto& d : dirs) {
        if (d == "request") r.on |= on_request;
        else if (d == "response") r.on |= on_response;
        else fail(on, sub, "entries must be request or response, not '" + d + "'");
      }
    } else {
      fail(kv.first, sub, "unknown key (name, pattern, action, replace, on, validate, label)");
    }
  }
  if (pseudonymize && r.action == rule_action::redact) r.action = rule_action::pseudonymize;
  r.origin = origin;
  try {
    finalize_rule(r);
  } catch (const std::exception& e) {
    fail(n, key, e.what());
  }
  return r;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::unique_ptr<compiled_policies> compile_policies(const YAML::Node& list, const std::string& base_dir) {
  auto c = std::make_unique<compiled_policies>();
  c->id = next_set_id++;
  std::vector<rule> req, resp;
  if (!list.IsDefined() || list.IsNull()) {
    c->request_rules = std::make_shared<rule_scanner>(std::vector<rule>{});
    c->response_rules = std::make_shared<rule_scanner>(std::vector<rule>{});
    return c;
  }
  if (!list.IsSequence()) fail(list, "policies", "must be a list of { path: FILE.lua } or { rules: [...] }");
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node& e = list[i];
    const std::string key = "policies[" + std::to_string(i) + "]";
    if (!e.IsMap()) fail(e, key, "must be a map with `path` or `rules`");
    std::string name;
    bool pseudonymize = false;
    script_limits limits;
    for (const auto& kv : e) {
      const std::string k = kv.first.as<std::string>();
      if (k == "name") name = scalar(kv.second, key + ".name");
      else if (k == "pseudonymize") {
        const std::string v = scalar(kv.second, key + ".pseudonymize");
        if (v != "true" && v != "false") fail(kv.second, key + ".pseudonymize", "must be true or false");
        pseudonymize = v == "true";
      } else if (k == "limits") {
        if (!kv.second.IsMap()) fail(kv.second, key + ".limits", "must be a map { memory, instructions }");
        if (kv.second["memory"]) limits.memory = parse_size(kv.second["memory"], key + ".limits.memory");
        if (kv.second["instructions"]) limits.instructions = parse_size(kv.second["instructions"], key + ".limits.instructions");
      } else if (k != "path" && k != "rules" && k != "settings") {
        fail(kv.first, key + "." + k, "unknown key (path, rules, name, settings, pseudonymize, limits)");
      }
    }
    if (e["path"] && e["rules"]) fail(e, key, "has both `path` and `rules`: use two entries");
    if (e["rules"]) {
      if (name.empty()) name = "rules" + std::to_string(i);
      const YAML::Node& rules = e["rules"];
      if (!rules.IsSequence()) fail(rules, key + ".rules", "must be a list");
      for (size_t j = 0; j < rules.size(); ++j) {
        const std::string rkey = key + ".rules[" + std::to_string(j) + "]";
        const std::string origin = where(rules[j], rkey);
        rule r = parse_rule(rules[j], rkey, origin, pseudonymize);
        if (r.on & on_request) {
          req.push_back(r);
          c->request_rule_policy.push_back(name);
        }
        if (r.on & on_response) {
          resp.push_back(r);
          c->response_rule_policy.push_back(name);
        }
      }
    } else if (e["path"]) {
      const std::string rel = scalar(e["path"], key + ".path");
      std::filesystem::path p(rel);
      if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
      script_source src;
      src.path = p.lexically_normal().string();
      src.name = name.empty() ? p.stem().string() : name;
      src.limits = limits;
      src.pseudonymize = pseudonymize;
      src.settings = to_setting(e["settings"]);
      if (src.settings.kind == setting::nil) src.settings.kind = setting::map;
      if (src.settings.kind != setting::map) fail(e["settings"], key + ".settings", "must be a map");
      try {
        src.code = read_file(p);
      } catch (const std::exception& ex) {
        fail(e["path"], key + ".path", ex.what());
      }
      std::vector<rule> declared;
      try {
        lua_runtime probe(src, &declared);
        src.has_on_request = probe.has_on_request();
        src.has_on_response = probe.has_on_response();
      } catch (const std::exception& ex) {
        fail(e["path"], key + ".path", ex.what());
      }
      for (auto& r : declared) {
        if (r.on & on_request) {
          req.push_back(r);
          c->request_rule_policy.push_back(src.name);
        }
        if (r.on & on_response) {
          resp.push_back(r);
          c->response_rule_policy.push_back(src.name);
        }
      }
      c->files.push_back(src.path);
      c->scripts.push_back(std::move(src));
    } else {
      fail(e, key, "needs `path: FILE.lua` or `rules: [...]`");
    }
  }
  try {
    c->request_rules = std::make_shared<rule_scanner>(std::move(req));
    c->response_rules = std::make_shared<rule_scanner>(std::move(resp));
  } catch (const std::exception& ex) {
    throw policy_error(std::string("policies: ") + ex.what());
  }
  for (const auto& w : c->response_rules->warnings()) c->warnings.push_back(w);
  return c;
}

}  // namespace moat::policy

#include "auth/auth_config.h"

#include <set>

namespace moat::auth {

bool api_key_entry::allows(std::string_view model) const {
  if (all_models) return true;
  for (const auto& m : models)
    if (m == model) return true;
  return false;
}

namespace {

struct where {
  std::string file;
  [[noreturn]] void fail(const YAML::Node& node, const std::string& key, const std::string& msg) const {
    const int line = node.IsDefined() ? node.Mark().line + 1 : 0;
    throw auth_config_error(file + ":" + std::to_string(line > 0 ? line : 1) + ": " + key + ": " + msg);
  }
};

std::uint64_t parse_limit(const where& w, const YAML::Node& n, const std::string& key, std::uint64_t max) {
  if (!n.IsScalar()) w.fail(n, key, "expected a non-negative integer");
  const std::string& s = n.Scalar();
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos)
    w.fail(n, key, "expected a non-negative integer, got \"" + s + "\"");
  const std::uint64_t v = std::stoull(s);
  if (v > max) w.fail(n, key, "at most " + std::to_string(max));
  return v;
}

api_key_entry parse_entry(const where& w, const YAML::Node& n, const std::string& key) {
  if (!n.IsMap()) w.fail(n, key, "expected a map with name, sha256, models, rpm, tpm, max_concurrent");
  for (const auto& kv : n) {
    const std::string k = kv.first.as<std::string>();
    if (k != "name" && k != "sha256" && k != "models" && k != "rpm" && k != "tpm" && k != "max_concurrent")
      w.fail(kv.first, key + "." + k, "unknown key (expected name, sha256, models, rpm, tpm, max_concurrent)");
  }
  api_key_entry e;
  const YAML::Node name = n["name"];
  if (!name || !name.IsScalar() || name.Scalar().empty()) w.fail(n, key + ".name", "required, a non-empty string");
  e.name = name.Scalar();
  const YAML::Node sha = n["sha256"];
  if (!sha || !sha.IsScalar()) w.fail(n, key + ".sha256", "required: the key's SHA-256 as 64 hex digits (see `moat key new`)");
  const auto digest = digest_from_hex(sha.Scalar());
  // Never echo the value: someone may have pasted the key itself here.
  if (!digest) w.fail(sha, key + ".sha256", "expected 64 hex digits (the key's SHA-256, not the key)");
  e.sha256 = *digest;
  if (const YAML::Node models = n["models"]) {
    if (!models.IsSequence() || models.size() == 0)
      w.fail(models, key + ".models", "expected a non-empty list of model names or [\"*\"]");
    e.all_models = false;
    for (std::size_t i = 0; i < models.size(); ++i) {
      const YAML::Node m = models[i];
      if (!m.IsScalar() || m.Scalar().empty())
        w.fail(m, key + ".models[" + std::to_string(i) + "]", "expected a model name");
      if (m.Scalar() == "*") e.all_models = true;
      e.models.push_back(m.Scalar());
    }
  }
  if (const YAML::Node v = n["rpm"]) e.rpm = static_cast<std::uint32_t>(parse_limit(w, v, key + ".rpm", 100'000'000));
  if (const YAML::Node v = n["tpm"]) e.tpm = parse_limit(w, v, key + ".tpm", 1'000'000'000'000ull);
  if (const YAML::Node v = n["max_concurrent"])
    e.max_concurrent = static_cast<std::uint32_t>(parse_limit(w, v, key + ".max_concurrent", 1'000'000));
  return e;
}

std::vector<api_key_entry> parse_entries(const where& w, const YAML::Node& list, const std::string& key) {
  if (!list.IsSequence()) w.fail(list, key, "expected a list of keys");
  std::vector<api_key_entry> out;
  for (std::size_t i = 0; i < list.size(); ++i)
    out.push_back(parse_entry(w, list[i], key + "[" + std::to_string(i) + "]"));
  return out;
}

void check_unique(const where& w, const YAML::Node& at, const std::string& key,
                  const std::vector<api_key_entry>& entries) {
  std::set<std::string> names, digests;
  for (const auto& e : entries) {
    if (!names.insert(e.name).second) w.fail(at, key, "duplicate key name \"" + e.name + "\"");
    if (!digests.insert(to_hex(e.sha256)).second) w.fail(at, key, "key \"" + e.name + "\" has the same sha256 as another");
  }
}

}  // namespace

auth_config parse_auth_config(const YAML::Node& auth, const std::filesystem::path& config_file) {
  const where w{config_file.string()};
  auth_config cfg;
  if (!auth || auth.IsNull()) return cfg;
  if (!auth.IsMap()) w.fail(auth, "auth", "expected a map with api_keys, keys_file, metrics_public");
  for (const auto& kv : auth) {
    const std::string k = kv.first.as<std::string>();
    if (k != "api_keys" && k != "keys_file" && k != "metrics_public")
      w.fail(kv.first, "auth." + k, "unknown key (expected api_keys, keys_file, metrics_public)");
  }
  if (const YAML::Node keys = auth["api_keys"]; keys && !keys.IsNull())
    cfg.api_keys = parse_entries(w, keys, "auth.api_keys");
  if (const YAML::Node f = auth["keys_file"]; f && !f.IsNull()) {
    if (!f.IsScalar() || f.Scalar().empty()) w.fail(f, "auth.keys_file", "expected a file path");
    std::filesystem::path p = f.Scalar();
    cfg.keys_file = p.is_relative() ? config_file.parent_path() / p : p;
  }
  if (const YAML::Node m = auth["metrics_public"]; m && !m.IsNull()) {
    if (!m.IsScalar() || (m.Scalar() != "true" && m.Scalar() != "false"))
      w.fail(m, "auth.metrics_public", "expected true or false");
    cfg.metrics_public = m.Scalar() == "true";
  }
  check_unique(w, auth, "auth.api_keys", cfg.api_keys);
  return cfg;
}

std::vector<api_key_entry> load_keys_file(const std::filesystem::path& path) {
  const where w{path.string()};
  YAML::Node root;
  try {
    root = YAML::LoadFile(path.string());
  } catch (const YAML::BadFile&) {
    throw auth_config_error(path.string() + ": cannot read the keys file");
  } catch (const YAML::ParserException& e) {
    throw auth_config_error(path.string() + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!root || root.IsNull()) return {};
  const YAML::Node list = root.IsMap() ? root["api_keys"] : root;
  if (root.IsMap() && root.size() != 1) w.fail(root, "api_keys", "a keys file holds only api_keys");
  auto entries = parse_entries(w, list, "api_keys");
  check_unique(w, list, "api_keys", entries);
  return entries;
}

}  // namespace moat::auth

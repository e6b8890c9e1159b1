// The `auth:` section, validated from the raw YAML node the gateway config keeps:
//
//   auth:
//     api_keys:
//       - { name: team-a, sha256: <64 hex>, models: ["*"], rpm: 600, tpm: 200000, max_concurrent: 8 }
//     keys_file: keys.yaml        # same list (or {api_keys: [...]}), reloaded on SIGHUP
//     metrics_public: false       # true: GET /metrics needs no key
//
//   auth_config a = moat::auth::parse_auth_config(cfg.auth, cfg.file);   // throws auth_config_error
//
// Limits of 0 (or absent) mean unlimited; `models` absent means ["*"].
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "auth/api_key.h"

namespace moat::auth {

// what() is "file:line: auth.api_keys[1].sha256: message", like config errors.
class auth_config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct api_key_entry {
  std::string name;
  key_digest sha256{};
  std::vector<std::string> models;  // allow-list; ignored when all_models
  bool all_models = true;
  std::uint32_t rpm = 0;             // requests per minute, 0: unlimited
  std::uint64_t tpm = 0;             // tokens per minute (prompt + completion), 0: unlimited
  std::uint32_t max_concurrent = 0;  // requests in flight, 0: unlimited

  bool allows(std::string_view model) const;
};

struct auth_config {
  std::vector<api_key_entry> api_keys;  // from the config file itself
  std::filesystem::path keys_file;      // resolved against the config's directory; empty: none
  bool metrics_public = false;

  // Keys are required on every route as soon as either source is configured.
  bool enabled() const { return !api_keys.empty() || !keys_file.empty(); }
};

// An undefined or null node gives a disabled config. `config_file` names the file in messages
// and anchors a relative keys_file.
auth_config parse_auth_config(const YAML::Node& auth, const std::filesystem::path& config_file);

// Reads a keys file: a list of entries, or a map with `api_keys:`. Throws auth_config_error.
std::vector<api_key_entry> load_keys_file(const std::filesystem::path& path);

}  // namespace moat::auth

// Helpers for the policy tests: write a config and scripts into a fresh temp folder.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "policy/policy.h"

namespace moat::policy::testing {

inline std::filesystem::path temp_dir() {
  std::random_device rd;
  auto p = std::filesystem::temp_directory_path() / ("moat-policy-" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(p);
  return p;
}

inline void write(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

// Loads `yaml` (the `policies:` list) with scripts given as name -> code beside it.
inline std::shared_ptr<const policy_set> load_set(const std::string& yaml,
                                                  const std::vector<std::pair<std::string, std::string>>& files = {}) {
  const auto dir = temp_dir();
  for (const auto& [name, code] : files) write(dir / name, code);
  return policy_set::load(YAML::Load(yaml), dir.string());
}

inline request_context chat(std::string content) {
  request_context c;
  c.model.push_back('m');
  c.key_name.append("team-a");
  message m;
  m.role.append("user");
  m.content = std::move(content);
  c.messages.push_back(std::move(m));
  return c;
}

}  // namespace moat::policy::testing

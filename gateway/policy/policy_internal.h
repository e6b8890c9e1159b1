// What a policy set compiles to; shared by policy_set, the Lua runtime and the tools. Not part of
// the request path's interface (that is policy.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "policy/rule_scanner.h"

namespace moat::policy {

struct script_limits {
  size_t memory = 64u << 20;          // bytes per lua_State
  uint64_t instructions = 10'000'000;  // VM instructions per hook call
};

// A value from an entry's `settings:` map, copied out of YAML so that worker threads never touch
// yaml-cpp nodes.
struct setting {
  enum kind_t { nil, boolean, number, string, list, map } kind = nil;
  bool b = false;
  double n = 0;
  std::string s;
  std::vector<std::string> keys;  // map: one per value; list: empty strings
  std::vector<setting> values;    // (a vector of an incomplete type is fine, a pair is not)
};

struct script_source {
  std::string name;  // the entry name (file stem unless `name:` is given)
  std::string path;  // as resolved
  std::string code;
  script_limits limits;
  setting settings;  // a map
  bool pseudonymize = false;
  bool has_on_request = false;
  bool has_on_response = false;
};

struct compiled_policies {
  std::shared_ptr<const rule_scanner> request_rules;
  std::shared_ptr<const rule_scanner> response_rules;
  std::vector<std::string> request_rule_policy;   // entry name per request rule
  std::vector<std::string> response_rule_policy;  // entry name per response rule
  std::vector<script_source> scripts;
  std::vector<std::string> files;
  std::vector<std::string> warnings;
  uint64_t id = 0;  // unique per compiled set: keys the per-thread Lua states
  // Expires with the set, so threads can drop their Lua states for sets that are gone.
  std::shared_ptr<const int> token = std::make_shared<const int>(0);
};

}  // namespace moat::policy

// libFuzzer target: arbitrary text and an arbitrary chunking through the streaming redactor must
// give exactly the whole-text redaction of the same text, for the shipped library's response
// rules and for a set of rules with anchors and word boundaries. The same for the pseudonym
// restorer. A mismatch traps (this is a test harness, not the server).
//
//   fuzz/policy/build.sh && build-fuzz-policy/stream_fuzz -max_total_time=60 fuzz/policy/corpus
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "policy/policy_internal.h"
#include "policy/pseudonyms.h"
#include "policy/stream_redactor.h"

using namespace moat::policy;

namespace {

std::shared_ptr<const rule_scanner> shipped() {
  static auto set = policy_set::load(
      YAML::Load("- { path: policies/pii.lua }\n- { path: policies/secrets.lua }\n"), MOAT_SOURCE_DIR);
  return set->compiled().response_rules;
}

std::shared_ptr<const rule_scanner> tricky() {
  static auto s = [] {
    std::vector<rule> rules = {
        {.name = "anchored", .pattern = R"(^ab+c)"},
        {.name = "line", .pattern = R"((?m)^x\d+$)"},
        {.name = "word", .pattern = R"(\bfoo\b)", .action = rule_action::audit},
        {.name = "lazy", .pattern = R"(<<.*?>>)"},
        {.name = "alt", .pattern = R"(a(?:b|bc|bcd)e?)"},
        {.name = "ci", .pattern = R"((?i)straße|kelvin)"},
        {.name = "utf8", .pattern = "é+ü?"},
        {.name = "tail", .pattern = R"(z+\z)"},
    };
    for (auto& r : rules) finalize_rule(r);
    return std::make_shared<const rule_scanner>(std::move(rules));
  }();
  return s;
}

void check(const std::shared_ptr<const rule_scanner>& scanner, std::string_view text, const std::vector<size_t>& cuts) {
  const std::string whole = redact_text(*scanner, text);
  stream_redactor r(scanner);
  std::string out;
  size_t at = 0;
  for (size_t c : cuts) {
    out += r.push(text.substr(at, c - at));
    at = c;
  }
  out += r.push(text.substr(at));
  out += r.finish();
  if (out != whole) {
    std::fprintf(stderr, "stream/whole mismatch\n text:   %.*s\n whole:  %s\n stream: %s\n",
                 static_cast<int>(text.size()), text.data(), whole.c_str(), out.c_str());
    __builtin_trap();
  }
}

void check_restorer(std::string_view text, const std::vector<size_t>& cuts) {
  auto map = std::make_shared<pseudonym_map>();
  map->placeholder("EMAIL", "a@b.cd");
  map->placeholder("EMAIL", "x@y.zz");
  map->placeholder("E", "short");
  const std::string whole = map->restore(text);
  pseudonym_restorer r(map);
  std::string out;
  size_t at = 0;
  for (size_t c : cuts) {
    out += r.push(text.substr(at, c - at));
    at = c;
  }
  out += r.push(text.substr(at));
  out += r.finish();
  if (out != whole) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // The first byte seeds the chunking, the rest is the text.
  uint32_t seed = data[0] * 2654435761u + 1;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<size_t> cuts;
  for (size_t i = 1; i < text.size(); ++i) {
    seed = seed * 1103515245u + 12345u;
    if ((seed >> 16) % 3 == 0) cuts.push_back(i);
  }
  check(shipped(), text, cuts);
  check(tricky(), text, cuts);
  check_restorer(text, cuts);
  return 0;
}

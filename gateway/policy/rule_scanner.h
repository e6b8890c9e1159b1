// Declarative rules and the one-pass scanner that applies them.
//
//   moat::policy::rule_scanner s({{.name = "email", .pattern = R"([\w.+-]+@[\w-]+\.[\w.-]+)"}});
//   auto hits = s.find_all("mail bob@example.com");   // one hit: [5, 20) rule 0
//
// Semantics (the same for whole texts and streams, which is what makes streaming exact): from the
// scan position, each rule's candidate is RE2's leftmost match (an empty match or one its validator
// rejects is skipped, searching again one byte later); the candidate that starts first wins, then
// the longest, then the rule listed first. The scan resumes at the winner's end.
// One RE2::Set per scanner finds which rules match at all, so text with nothing to find costs
// one DFA pass.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <re2/re2.h>
#include <re2/set.h>

#include "policy/pattern_automaton.h"
#include "policy/validators.h"


namespace moat::policy {

enum class rule_action { redact, block, audit, pseudonymize };
enum direction : unsigned { on_request = 1u, on_response = 2u };

const char* action_name(rule_action a);

struct rule {
  std::string name;              // "email"; reported in decisions and the audit line
  std::string pattern;           // RE2 syntax
  rule_action action = rule_action::redact;
  std::string replace;           // default "[NAME]" upper-cased (filled by finalize_rule)
  unsigned on = on_request | on_response;
  std::string validate;          // validator name, or empty
  std::string label;             // pseudonym label, default NAME upper-cased
  std::string origin;            // "moat.yaml:12" or "policies/pii.lua": for error messages
};

// Fills defaults (replace, label) and checks the pattern and validator; throws
// std::invalid_argument with a message naming the rule and its origin.
void finalize_rule(rule& r);

struct rule_hit {
  size_t begin = 0;  // byte offsets into the scanned text
  size_t end = 0;
  int rule = -1;     // index into rule_scanner::rules()
};

class rule_scanner {
 public:
  explicit rule_scanner(std::vector<rule> rules);  // rules must be finalized
  ~rule_scanner();
  rule_scanner(const rule_scanner&) = delete;
  rule_scanner& operator=(const rule_scanner&) = delete;

  const std::vector<rule>& rules() const { return rules_; }
  bool empty() const { return rules_.empty(); }

  // Indices of the rules that match somewhere in `text` (one RE2::Set pass).
  std::vector<int> active_rules(std::string_view text) const;
  // Every hit in a whole text, in order.
  std::vector<rule_hit> find_all(std::string_view text) const;
  // The scan step shared by whole texts and streams: appends to `out` every winning hit that
  // starts in [pos, limit) and returns the position after the last one (pos when none).
  size_t scan(std::string_view text, size_t pos, size_t limit, const std::vector<int>& active,
              std::vector<rule_hit>& out) const;

  // The NFA over all patterns, for the stream hold-back (see pattern_automaton.h).
  const pattern_automaton& automaton() const { return *automaton_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  struct candidate {
    size_t begin = 0, end = 0;
    bool found = false;
  };
  candidate find_from(int r, std::string_view text, size_t from) const;
  size_t scan_per_rule(std::string_view text, size_t pos, size_t limit, const std::vector<int>& active,
                       std::vector<rule_hit>& out) const;

  std::vector<rule> rules_;
  std::vector<std::unique_ptr<RE2>> compiled_;
  std::vector<validator_fn> validators_;
  std::unique_ptr<RE2::Set> set_;
  std::unique_ptr<RE2> any_;  // (?:p1)|(?:p2)|...: finds the next start where any rule matches
  std::vector<int> all_;
  std::shared_ptr<const pattern_automaton> automaton_;
  std::vector<std::string> warnings_;
};

// Replaces each hit with what `render(hit)` returns; other bytes are copied.
template <typename Render>
std::string apply_hits(std::string_view text, const std::vector<rule_hit>& hits, Render&& render) {
  std::string out;
  out.reserve(text.size());
  size_t at = 0;
  for (const auto& h : hits) {
    out.append(text.substr(at, h.begin - at));
    out.append(render(h));
    at = h.end;
  }
  out.append(text.substr(at));
  return out;
}

}  // namespace moat::policy

#include "policy/rule_scanner.h"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace moat::policy {

const char* action_name(rule_action a) {
  switch (a) {
    case rule_action::redact: return "redact";
    case rule_action::block: return "block";
    case rule_action::audit: return "audit";
    case rule_action::pseudonymize: return "pseudonymize";
  }
  return "?";
}

namespace {

RE2::Options rule_options() {
  RE2::Options o;
  o.set_log_errors(false);
  o.set_max_mem(32 << 20);
  return o;
}

std::string upper(std::string_view s) {
  std::string u(s);
  for (auto& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return u;
}

}  // namespace

void finalize_rule(rule& r) {
  const std::string where = r.origin.empty() ? "" : " (" + r.origin + ")";
  if (r.name.empty()) throw std::invalid_argument("a rule needs a name" + where);
  if (r.pattern.empty()) throw std::invalid_argument("rule '" + r.name + "' needs a pattern" + where);
  RE2 re(r.pattern, rule_options());
  if (!re.ok()) throw std::invalid_argument("rule '" + r.name + "': bad pattern: " + re.error() + where);
  if (!r.validate.empty() && !find_validator(r.validate))
    throw std::invalid_argument("rule '" + r.name + "': unknown validator '" + r.validate + "'" + where);
  if (r.on == 0) throw std::invalid_argument("rule '" + r.name + "': `on` is empty" + where);
  if (r.label.empty()) r.label = upper(r.name);
  if (r.replace.empty()) {
    r.replace.assign(1, '[');
    r.replace.append(upper(r.name));
    r.replace.push_back(']');
  }
}

rule_scanner::rule_scanner(std::vector<rule> rules) : rules_(std::move(rules)) {
  set_ = std::make_unique<RE2::Set>(rule_options(), RE2::UNANCHORED);
  std::vector<std::string> patterns;
  for (size_t i = 0; i < rules_.size(); ++i) {
    auto re = std::make_unique<RE2>(rules_[i].pattern, rule_options());
    if (!re->ok()) throw std::invalid_argument("rule '" + rules_[i].name + "': bad pattern: " + re->error());
    compiled_.push_back(std::move(re));
    validators_.push_back(rules_[i].validate.empty() ? nullptr : find_validator(rules_[i].validate));
    std::string error;
    if (set_->Add(rules_[i].pattern, &error) < 0)
      throw std::invalid_argument("rule '" + rules_[i].name + "': " + error);
    patterns.push_back(rules_[i].pattern);
    all_.push_back(static_cast<int>(i));
  }
  if (!set_->Compile()) throw std::invalid_argument("the rules do not fit in one RE2::Set (memory)");
  if (!rules_.empty()) {
    std::string alt;
    for (size_t i = 0; i < rules_.size(); ++i) {
      if (i) alt += "|";
      alt += "(?:" + rules_[i].pattern + ")";
    }
    any_ = std::make_unique<RE2>(alt, rule_options());
    if (!any_->ok()) any_.reset();  // too big: scan rule by rule instead
  }
  automaton_ = pattern_automaton::build(patterns, &warnings_);
}

rule_scanner::~rule_scanner() = default;

std::vector<int> rule_scanner::active_rules(std::string_view text) const {
  if (rules_.empty()) return {};
  std::vector<int> hits;
  RE2::Set::ErrorInfo info{};
  if (!set_->Match(re2::StringPiece(text.data(), text.size()), &hits, &info)) {
    // No match, or the DFA ran out of memory: then every rule is tried on its own.
    return info.kind == RE2::Set::kNoError ? std::vector<int>{} : all_;
  }
  std::sort(hits.begin(), hits.end());
  return hits;
}

rule_scanner::candidate rule_scanner::find_from(int r, std::string_view text, size_t from) const {
  const re2::StringPiece sp(text.data(), text.size());
  while (from <= text.size()) {
    re2::StringPiece m;
    if (!compiled_[r]->Match(sp, from, text.size(), RE2::UNANCHORED, &m, 1)) return {};
    const size_t b = static_cast<size_t>(m.data() - text.data());
    const size_t e = b + m.size();
    if (e > b && (!validators_[r] || validators_[r](text.substr(b, e - b)))) return {b, e, true};
    from = b + 1;
  }
  return {};
}

size_t rule_scanner::scan(std::string_view text, size_t pos, size_t limit, const std::vector<int>& active,
                          std::vector<rule_hit>& out) const {
  // The same semantics as scan_per_rule, in one pass: the alternation of every pattern finds the
  // next start where some rule matches; there each active rule is tried anchored (its leftmost
  // match from pos starts there, as no rule matches earlier); the longest valid one wins, the
  // first listed on a tie. Without a valid one the search goes on one byte later.
  if (!any_ || active.size() < 2) return scan_per_rule(text, pos, limit, active, out);
  const re2::StringPiece sp(text.data(), text.size());
  size_t cur = pos;
  while (pos < limit && pos < text.size() && cur <= text.size() && cur < limit) {
    re2::StringPiece m;
    if (!any_->Match(sp, cur, text.size(), RE2::UNANCHORED, &m, 1)) break;
    const size_t s = static_cast<size_t>(m.data() - text.data());
    if (s >= limit) break;
    int best = -1;
    size_t best_end = 0;
    for (int r : active) {
      re2::StringPiece a;
      if (!compiled_[r]->Match(sp, s, text.size(), RE2::ANCHOR_START, &a, 1)) continue;
      const size_t e = s + a.size();
      if (e == s || e <= best_end) continue;
      if (validators_[r] && !validators_[r](text.substr(s, e - s))) continue;
      best = r;
      best_end = e;
    }
    if (best < 0) {
      cur = s + 1;
      continue;
    }
    out.push_back({s, best_end, best});
    pos = cur = best_end;
  }
  return pos;
}

size_t rule_scanner::scan_per_rule(std::string_view text, size_t pos, size_t limit, const std::vector<int>& active,
                                   std::vector<rule_hit>& out) const {
  std::vector<candidate> cands(active.size());
  std::vector<bool> fresh(active.size(), false);
  while (pos < limit && pos < text.size()) {
    int best = -1;
    for (size_t k = 0; k < active.size(); ++k) {
      // A cached candidate is still right if it starts at or after pos (see header).
      if (!fresh[k] || (cands[k].found && cands[k].begin < pos)) {
        cands[k] = find_from(active[k], text, pos);
        fresh[k] = true;
      }
      if (!cands[k].found) continue;
      if (best < 0) {
        best = static_cast<int>(k);
        continue;
      }
      const auto& c = cands[k];
      const auto& b = cands[best];
      if (c.begin < b.begin || (c.begin == b.begin && c.end > b.end)) best = static_cast<int>(k);
    }
    if (best < 0 || cands[best].begin >= limit) break;
    out.push_back({cands[best].begin, cands[best].end, active[best]});
    pos = cands[best].end;
  }
  return pos;
}

std::vector<rule_hit> rule_scanner::find_all(std::string_view text) const {
  std::vector<rule_hit> hits;
  const auto active = active_rules(text);
  if (!active.empty()) scan(text, 0, text.size() + 1, active, hits);
  return hits;
}

}  // namespace moat::policy

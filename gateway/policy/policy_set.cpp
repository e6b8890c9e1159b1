// policy_set: the request check and the response filters built from a compiled set.
#include "policy/policy.h"

#include <yaml-cpp/yaml.h>
#include <spdlog/spdlog.h>

#include <map>

#include "policy/lua_runtime.h"
#include "policy/policy_internal.h"
#include "policy/stream_redactor.h"

namespace moat::policy {

std::unique_ptr<compiled_policies> compile_policies(const YAML::Node& list, const std::string& base_dir);

namespace {

// Marks where a block rule hit in a stream's output, so push() can cut there.
constexpr std::string_view block_marker{"\0moat-block\0", 12};

// Counts hits per (policy, rule, action) into decisions.
void count_hit(std::map<std::tuple<std::string, std::string, std::string>, int>& counts, const std::string& policy,
               const rule& r) {
  ++counts[{policy, r.name, action_name(r.action)}];
}

void flush_counts(const std::map<std::tuple<std::string, std::string, std::string>, int>& counts, decision& d) {
  for (const auto& [k, n] : counts) d.decisions.push_back({std::get<0>(k), std::get<1>(k), std::get<2>(k), n});
}

}  // namespace

std::string decision::message() const {
  switch (outcome) {
    case verdict::allow: return {};
    case verdict::block: return "Blocked by policy: " + reason;
    case verdict::fail: return "A policy failed and the request was refused: " + reason;
  }
  return {};
}

policy_set::policy_set(std::unique_ptr<compiled_policies> c) : c_(std::move(c)) {}
policy_set::~policy_set() = default;

std::shared_ptr<const policy_set> policy_set::load(const YAML::Node& policies, const std::string& base_dir) {
  return std::shared_ptr<const policy_set>(new policy_set(compile_policies(policies, base_dir)));
}

std::shared_ptr<const policy_set> policy_set::none() { return load(YAML::Node(), "."); }

bool policy_set::empty() const {
  return c_->request_rules->empty() && c_->response_rules->empty() && c_->scripts.empty();
}
const std::vector<std::string>& policy_set::files() const { return c_->files; }
const std::vector<std::string>& policy_set::warnings() const { return c_->warnings; }

decision policy_set::check_request(request_context& ctx) const {
  decision d;
  const rule_scanner& rs = *c_->request_rules;
  if (!rs.empty()) {
    std::map<std::tuple<std::string, std::string, std::string>, int> counts;
    const rule* blocked = nullptr;
    size_t blocked_index = 0;
    auto apply = [&](std::string& text) {
      const auto hits = rs.find_all(text);
      if (hits.empty()) return;
      text = apply_hits(text, hits, [&](const rule_hit& h) -> std::string {
        const rule& r = rs.rules()[h.rule];
        count_hit(counts, c_->request_rule_policy[h.rule], r);
        const std::string_view matched = std::string_view(text).substr(h.begin, h.end - h.begin);
        switch (r.action) {
          case rule_action::block:
            if (!blocked) {
              blocked = &r;
              blocked_index = static_cast<size_t>(h.rule);
            }
            return r.replace;
          case rule_action::redact: return r.replace;
          case rule_action::audit: return std::string(matched);
          case rule_action::pseudonymize:
            if (!ctx.pseudonyms) ctx.pseudonyms = std::make_shared<pseudonym_map>();
            return ctx.pseudonyms->placeholder(r.label, matched);
        }
        return r.replace;
      });
    };
    for (auto& m : ctx.messages) apply(m.content);
    for (auto& p : ctx.prompts) apply(p);
    flush_counts(counts, d);
    if (blocked) {
      d.outcome = verdict::block;
      d.reason = "policy " + c_->request_rule_policy[blocked_index] + " (rule " + blocked->name + ")";
      return d;
    }
  }
  for (size_t i = 0; i < c_->scripts.size(); ++i) {
    if (!c_->scripts[i].has_on_request) continue;
    try {
      runtime_for(*c_, i).on_request(ctx, d);
    } catch (const std::exception& e) {
      d.outcome = verdict::fail;
      d.reason = "policy " + c_->scripts[i].name + " could not start: " + e.what();
      spdlog::error("{}", d.reason);
    }
    if (d.route_model) ctx.model = *d.route_model;
    if (d.outcome != verdict::allow) return d;
  }
  return d;
}

std::unique_ptr<response_filter> policy_set::response_filter_for(const request_context& ctx) const {
  return std::unique_ptr<response_filter>(new response_filter(shared_from_this(), *this, ctx));
}

decision policy_set::filter_response(const request_context& ctx, std::string& text, std::string* audit_text) const {
  decision d;
  const rule_scanner& rs = *c_->response_rules;
  if (!rs.empty()) {
    std::map<std::tuple<std::string, std::string, std::string>, int> counts;
    const rule_hit* blocked = nullptr;
    const auto hits = rs.find_all(text);
    for (const auto& h : hits) {
      count_hit(counts, c_->response_rule_policy[h.rule], rs.rules()[h.rule]);
      if (!blocked && rs.rules()[h.rule].action == rule_action::block) blocked = &h;
    }
    flush_counts(counts, d);
    if (blocked) {
      d.outcome = verdict::block;
      d.reason = "policy " + c_->response_rule_policy[blocked->rule] + " (rule " + rs.rules()[blocked->rule].name + ")";
      text.clear();
      return d;
    }
    if (!hits.empty()) {
      text = apply_hits(text, hits, [&](const rule_hit& h) {
        return default_render(rs.rules()[h.rule], std::string_view(text).substr(h.begin, h.end - h.begin));
      });
    }
  }
  for (size_t i = 0; i < c_->scripts.size(); ++i) {
    if (!c_->scripts[i].has_on_response) continue;
    try {
      runtime_for(*c_, i).on_response(ctx, text, d, false);
    } catch (const std::exception& e) {
      d.outcome = verdict::fail;
      d.reason = "policy " + c_->scripts[i].name + " could not start: " + e.what();
      spdlog::error("{}", d.reason);
    }
    if (d.outcome != verdict::allow) {
      text.clear();
      return d;
    }
  }
  if (audit_text) *audit_text = text;
  if (ctx.pseudonyms && !ctx.pseudonyms->empty()) text = ctx.pseudonyms->restore(text);
  return d;
}

// ---- response_filter -------------------------------------------------------------------------

response_filter::response_filter(std::shared_ptr<const policy_set> keep, const policy_set& set,
                                 const request_context& ctx)
    : keep_(std::move(keep)), set_(set) {
  ctx_.model = ctx.model;
  ctx_.key_name = ctx.key_name;
  ctx_.client_subject = ctx.client_subject;
  ctx_.pseudonyms = ctx.pseudonyms;
  const auto& c = *set_.c_;
  hit_counts_.assign(c.response_rules->rules().size(), 0);
  if (!c.response_rules->empty()) {
    const rule* first = c.response_rules->rules().data();
    redactor_ = std::make_unique<stream_redactor>(
        c.response_rules, [this, first](const rule& r, std::string_view matched) -> std::string {
          ++hit_counts_[static_cast<size_t>(&r - first)];
          if (r.action == rule_action::block) {
            if (!blocked_) block_rule_ = r.name;
            return std::string(block_marker);
          }
          return default_render(r, matched);
        });
  }
  if (ctx.pseudonyms && !ctx.pseudonyms->empty()) restorer_ = std::make_unique<pseudonym_restorer>(ctx.pseudonyms);
}

response_filter::~response_filter() = default;

std::string response_filter::after_redaction(std::string s) {
  if (blocked_) return {};
  const size_t cut = s.find(block_marker);
  if (cut != std::string::npos) {
    s.resize(cut);
    blocked_ = true;
  }
  answer_.append(s);
  return restorer_ ? restorer_->push(s) + (blocked_ ? restorer_->finish() : std::string()) : s;
}

std::string response_filter::push(std::string_view delta) {
  if (blocked_) return {};
  return after_redaction(redactor_ ? redactor_->push(delta) : std::string(delta));
}

std::string response_filter::finish() {
  if (blocked_) return {};
  std::string out = after_redaction(redactor_ ? redactor_->finish() : std::string());
  if (restorer_ && !blocked_) out += restorer_->finish();
  return out;
}

decision response_filter::complete() {
  decision d;
  const auto& c = *set_.c_;
  for (size_t i = 0; i < hit_counts_.size(); ++i) {
    if (hit_counts_[i] == 0) continue;
    const rule& r = c.response_rules->rules()[i];
    d.decisions.push_back({c.response_rule_policy[i], r.name, action_name(r.action), hit_counts_[i]});
  }
  if (blocked_) {
    d.outcome = verdict::block;
    d.reason = "the answer matched rule " + block_rule_ + "; the stream was cut";
  }
  for (size_t i = 0; i < c.scripts.size(); ++i) {
    if (!c.scripts[i].has_on_response) continue;
    try {
      runtime_for(c, i).on_response(ctx_, answer_, d, true);
    } catch (const std::exception& e) {
      d.outcome = verdict::fail;
      d.reason = "policy " + c.scripts[i].name + " could not start: " + e.what();
    }
  }
  return d;
}

}  // namespace moat::policy

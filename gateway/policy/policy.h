// The policy engine's façade for the request path. A policy_set is immutable and shared; the
// policy_manager swaps it atomically on reload. Per request:
//
//   auto set = manager.current();                       // std::shared_ptr<const policy_set>
//   moat::policy::request_context ctx;
//   ctx.model = req.model; ctx.key_name = key; ctx.messages = {{"user", "mail bob@x.com"}};
//   auto d = set->check_request(ctx);                   // on the I/O thread: fast, no blocking
//   if (d.outcome != moat::policy::verdict::allow)
//     return error(d.http_status(), d.error_code(), d.message());   // 403 policy_violation / 500
//   // ctx.messages now holds what the backend may see (redacted, pseudonymized)
//   auto filter = set->response_filter_for(ctx);         // one per response
//   for (delta : stream) send(filter->push(delta));      // streamed; then send(filter->finish())
//   auto done = filter->complete();                      // on_response hooks: tags for the audit
//   // or, for a whole answer: auto d2 = set->filter_response(ctx, text);
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/pseudonyms.h"

namespace YAML {
class Node;
}

namespace moat::policy {

class rule_scanner;
class stream_redactor;
class pseudonym_restorer;
struct compiled_policies;

struct message {
  std::string role;
  std::string content;
};

// What the request path knows about one request; the policies may rewrite messages/prompts.
struct request_context {
  std::string model;
  std::string key_name;        // empty: no API key (auth off)
  std::string client_subject;  // TLS client certificate subject, empty when none
  std::vector<message> messages;   // chat
  std::vector<std::string> prompts;  // completions
  // Filled by check_request when a pseudonymize rule fired; the response filter restores from it.
  std::shared_ptr<pseudonym_map> pseudonyms;
};

enum class verdict { allow, block, fail };

// One policy's effect on a request, for the audit line: rule hits are counted, Lua calls listed.
struct policy_decision {
  std::string policy;  // the entry name: a Lua file's stem or a rules entry's `name`
  std::string rule;    // rule name, or "on_request"/"on_response" for a script hook
  std::string action;  // redact, block, audit, pseudonymize, route, fail
  int count = 1;
};

struct decision {
  verdict outcome = verdict::allow;
  std::string reason;  // block: the policy's reason (never the matched value); fail: the cause
  std::vector<std::pair<std::string, std::string>> tags;
  std::vector<policy_decision> decisions;
  std::optional<std::string> route_model;  // a script set ctx.model

  int http_status() const { return outcome == verdict::allow ? 200 : outcome == verdict::block ? 403 : 500; }
  const char* error_type() const { return outcome == verdict::block ? "invalid_request_error" : "server_error"; }
  const char* error_code() const { return outcome == verdict::block ? "policy_violation" : "policy_error"; }
  std::string message() const;  // the client-facing error message
};

class response_filter;

class policy_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class policy_set : public std::enable_shared_from_this<policy_set> {
 public:
  // Compiles the `policies:` list. Relative paths resolve against `base_dir` (the config file's
  // folder). Throws policy_error naming the entry, key and line.
  static std::shared_ptr<const policy_set> load(const YAML::Node& policies, const std::string& base_dir);
  static std::shared_ptr<const policy_set> none();  // no policies: everything allowed

  ~policy_set();

  // Request rules then each script's on_request, in list order. Rewrites ctx in place.
  decision check_request(request_context& ctx) const;
  // A streamed response: redaction + pseudonym restoration per delta.
  std::unique_ptr<response_filter> response_filter_for(const request_context& ctx) const;
  // A whole response: rules, on_response hooks (which may redact or block), then restoration.
  // `audit_text`, when given, receives the answer before pseudonyms are restored: the form the
  // audit line may hold.
  decision filter_response(const request_context& ctx, std::string& text, std::string* audit_text = nullptr) const;

  bool empty() const;
  // Files the set was built from (Lua scripts), for the reload watcher.
  const std::vector<std::string>& files() const;
  // Compile-time notes (e.g. a pattern the stream analysis cannot follow).
  const std::vector<std::string>& warnings() const;
  const compiled_policies& compiled() const { return *c_; }

 private:
  explicit policy_set(std::unique_ptr<compiled_policies> c);
  std::unique_ptr<compiled_policies> c_;
  friend class response_filter;
};

// One per response, not thread-safe (the connection's strand owns it).
class response_filter {
 public:
  ~response_filter();
  // Returns what may be sent now. After a block rule hit, returns "" and blocked() is true.
  std::string push(std::string_view delta);
  std::string finish();
  bool blocked() const { return blocked_; }
  // Runs on_response hooks on the whole answer (as redacted) for tags and decisions; call once
  // after finish(). A script's block here is recorded (the stream is already sent).
  decision complete();
  // The answer so far as redacted, before pseudonyms are restored: what the audit line may hold.
  const std::string& audit_text() const { return answer_; }

 private:
  friend class policy_set;
  response_filter(std::shared_ptr<const policy_set> keep, const policy_set& set, const request_context& ctx);
  std::string after_redaction(std::string s);

  std::shared_ptr<const policy_set> keep_;
  const policy_set& set_;
  request_context ctx_;  // model/key/client for hooks (messages not copied)
  std::unique_ptr<stream_redactor> redactor_;
  std::unique_ptr<pseudonym_restorer> restorer_;
  std::string answer_;  // redacted answer before restoration, for on_response and the audit
  std::vector<int> hit_counts_;
  bool blocked_ = false;
  std::string block_rule_;
};

}  // namespace moat::policy

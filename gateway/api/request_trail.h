// One request's passage through the policies and into the audit trail. A handler creates a
// trail first, wraps its responder (so the status of any answer, errors included, is recorded),
// runs the request policies on the parsed text, and hands the trail to the generation job, which
// filters the answer and records tokens. The audit line is written when the last owner lets go
// (the answer is complete or the client left), off the I/O thread through the audit writer's queue.
//
//   auto trail = std::make_shared<moat::api::request_trail>(ctx, req, route::chat_completions);
//   respond = trail->wrap(std::move(respond));
//   trail->policy.model = chat.model;  trail->policy.messages = {...};
//   if (auto err = trail->check_request()) return respond(error_response(ctx.metrics, *err, route));
//   // trail->policy now holds the redacted text: send only that to the backend
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/api.h"
#include "audit/audit_log.h"
#include "policy/policy.h"

namespace moat::api {

class request_trail : public std::enable_shared_from_this<request_trail> {
 public:
  request_trail(api_context& ctx, const http::request& req, metrics::route route);
  // With the policy set already loaded (`set` may be null: no policies).
  request_trail(api_context& ctx, const http::request& req, metrics::route route,
                std::shared_ptr<const policy::policy_set> set);
  // The trail a request needs, or null when nothing would read it: no audit log and no policy
  // to run, so there is nothing to record or filter (and the hot path skips the trail's
  // allocations and its wrapped responder).
  static std::shared_ptr<request_trail> open(api_context& ctx, const http::request& req,
                                             metrics::route route);
  ~request_trail();  // submits the audit line (never throws)
  request_trail(const request_trail&) = delete;
  request_trail& operator=(const request_trail&) = delete;

  // A responder that records the answer's status, then answers. Holds the trail until called.
  http::responder wrap(http::responder respond);

  // Runs the current policy set's request checks on `policy` (fill model, messages or prompts
  // first). nullopt: allowed, `policy` rewritten to what the backend may see; else the error to
  // answer with (403 policy_violation, or 500 when a policy failed).
  std::optional<openai::api_error> check_request();

  // The set this request uses from start to end (a reload mid-request does not change it).
  const std::shared_ptr<const policy::policy_set>& policies() const { return set_; }
  // True when answers must go through a response filter.
  bool filters_responses() const { return set_ && !set_->empty(); }

  void record(const policy::decision& d);  // decisions and tags, for the audit line
  void set_status(int status) { status_ = status; }
  void set_tokens(int64_t prompt, int64_t completion) {
    tokens_prompt_ = prompt;
    tokens_completion_ = completion;
  }
  void set_id(std::string id) { id_ = std::move(id); }
  void set_request_payload(std::string redacted) { request_ = std::move(redacted); }
  void set_response_payload(std::string redacted) { response_ = std::move(redacted); }

  policy::request_context policy;  // model, key, client subject, and the (redacted) text

 private:
  audit::audit_log* audit_;
  std::shared_ptr<const policy::policy_set> set_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::system_clock::time_point time_ = std::chrono::system_clock::now();
  std::string id_;
  int status_ = 0;  // 0: no answer was sent (the client left first)
  int64_t tokens_prompt_ = -1;
  int64_t tokens_completion_ = -1;
  std::vector<audit::audit_decision> decisions_;
  std::vector<std::pair<std::string, std::string>> tags_;
  std::optional<std::string> request_;
  std::optional<std::string> response_;
};

// The body's "model" string when it has one (for the audit line of a request that failed to
// parse); empty otherwise.
std::string model_named_in(std::string_view body);

// Runs the request policies over the text prompts (completions, embeddings) and writes the
// redacted texts back into `prompts`; token prompts pass untouched. nullopt: allowed.
std::optional<openai::api_error> apply_prompt_policies(request_trail& trail, std::vector<openai::prompt>& prompts);

// The client-facing error for a decision that is not `allow`.
openai::api_error policy_error(const policy::decision& d);

}  // namespace moat::api

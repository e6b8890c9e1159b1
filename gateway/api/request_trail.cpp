#include "api/request_trail.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include "policy/policy_manager.h"

namespace moat::api {

request_trail::request_trail(api_context& ctx, const http::request& req, metrics::route route)
    : request_trail(ctx, req, route, ctx.policies ? ctx.policies->current() : nullptr) {}

request_trail::request_trail(api_context& ctx, const http::request& req, metrics::route route,
                             std::shared_ptr<const policy::policy_set> set)
    : audit_(ctx.audit), set_(std::move(set)) {
  (void)route;
  id_ = std::string(req.request_id);
  if (ctx.identify) ctx.identify(req, policy);
}

std::shared_ptr<request_trail> request_trail::open(api_context& ctx, const http::request& req,
                                                   metrics::route route) {
  auto set = ctx.policies ? ctx.policies->current() : nullptr;
  if (ctx.audit == nullptr && (!set || set->empty())) return nullptr;
  return std::make_shared<request_trail>(ctx, req, route, std::move(set));
}

request_trail::~request_trail() {
  if (audit_ == nullptr) return;
  try {
    audit::audit_record r;
    r.id = std::move(id_);
    r.time = time_;
    r.key_name = std::move(policy.key_name);
    r.client_subject = std::move(policy.client_subject);
    r.model = std::move(policy.model);
    r.status = status_ == 0 ? 499 : status_;  // 499: the client closed before any answer
    r.latency_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
    r.tokens_prompt = tokens_prompt_;
    r.tokens_completion = tokens_completion_;
    r.decisions = std::move(decisions_);
    r.tags = std::move(tags_);
    r.request = std::move(request_);
    r.response = std::move(response_);
    audit_->submit(std::move(r));
  } catch (const std::exception& e) {
    spdlog::error("audit: could not queue the line for request {}: {}", id_, e.what());
  }
}

http::responder request_trail::wrap(http::responder respond) {
  // The responder lives in the handler's closure chain; the trail outlives it through this
  // capture until the answer (or a stream's end) releases it.
  return [self = shared_from_this(), respond = std::move(respond)](http::response res) mutable {
    self->status_ = res.status;
    respond(std::move(res));
  };
}

std::optional<openai::api_error> request_trail::check_request() {
  if (!set_ || set_->empty()) return std::nullopt;
  policy::decision d;
  try {
    d = set_->check_request(policy);
  } catch (const std::exception& e) {
    // The façade reports failures as decisions; this is the last line of defence: fail closed.
    d.outcome = policy::verdict::fail;
    d.reason = e.what();
  }
  record(d);
  if (d.outcome == policy::verdict::allow) {
    if (d.route_model) policy.model = *d.route_model;
    return std::nullopt;
  }
  if (d.outcome == policy::verdict::fail) spdlog::error("[{}] policy failed: {}", id_, d.reason);
  return policy_error(d);
}

void request_trail::record(const policy::decision& d) {
  for (const auto& p : d.decisions) decisions_.push_back({p.policy, p.rule, p.action, p.count});
  for (const auto& t : d.tags) tags_.push_back(t);
}

std::string model_named_in(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::object root;
  std::string_view model;
  if (parser.parse(simdjson::padded_string(body)).get(root) != simdjson::SUCCESS) return {};
  if (root["model"].get(model) != simdjson::SUCCESS) return {};
  return std::string(model);
}

std::optional<openai::api_error> apply_prompt_policies(request_trail& trail, std::vector<openai::prompt>& prompts) {
  std::vector<size_t> text_index;  // prompt index of each text handed to the policies
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].is_tokens) continue;
    text_index.push_back(i);
    trail.policy.prompts.push_back(prompts[i].text);
  }
  if (auto err = trail.check_request()) return err;
  if (trail.policy.prompts.size() != text_index.size()) {
    // A script removed or added prompts: the answer's choices would no longer match the request.
    policy::decision d;
    d.outcome = policy::verdict::fail;
    d.reason = "a policy changed the number of prompts";
    return policy_error(d);
  }
  for (size_t j = 0; j < text_index.size(); ++j) prompts[text_index[j]].text = trail.policy.prompts[j];
  return std::nullopt;
}

openai::api_error policy_error(const policy::decision& d) {
  openai::api_error e;
  e.status = d.http_status();
  e.type = d.error_type();
  e.code = d.error_code();
  e.message = d.message();
  return e;
}

}  // namespace moat::api

// POST /tokenize (vLLM's extension): a prompt or chat messages into token ids.
#include "api/common.h"
#include "api/request_trail.h"
#include "host/request_builder.h"

namespace moat::api {

void tokenize(api_context& ctx, const http::request& req, http::responder respond) {
  constexpr auto route = metrics::route::tokenize;
  auto trail = std::make_shared<request_trail>(ctx, req, route);
  auto parsed = openai::parse_tokenize_request(req.body);
  if (auto* err = std::get_if<openai::api_error>(&parsed)) {
    // Audited too (the model as named, if any); the body was not checked, so none of it is kept.
    trail->policy.model = model_named_in(req.body);
    return trail->wrap(std::move(respond))(error_response(ctx.metrics, *err, route));
  }
  auto& tok = std::get<openai::tokenize_request>(parsed);
  respond = trail->wrap(std::move(respond));
  trail->policy.model = tok.model;
  // The text is request text like any other: the backend tokenizes what the policies left.
  if (trail->filters_responses()) {
    if (tok.prompt) {
      trail->policy.prompts.push_back(*tok.prompt);
    } else {
      for (const auto& m : tok.messages) trail->policy.messages.push_back({m.role, m.content});
    }
    if (auto err = trail->check_request()) return respond(error_response(ctx.metrics, *err, route));
    if (tok.prompt) {
      if (trail->policy.prompts.size() != 1) {
        policy::decision d;
        d.outcome = policy::verdict::fail;
        d.reason = "a policy changed the number of prompts";
        return respond(error_response(ctx.metrics, policy_error(d), route));
      }
      tok.prompt = trail->policy.prompts.front();
    } else {
      std::vector<openai::chat_message> redacted;
      for (size_t i = 0; i < trail->policy.messages.size(); ++i) {
        auto& m = trail->policy.messages[i];
        redacted.push_back({m.role, m.content, i < tok.messages.size() ? tok.messages[i].name : std::string()});
      }
      tok.messages = std::move(redacted);
    }
    tok.model = trail->policy.model;
  }
  host::backend* b = find_backend(ctx, tok.model, route, respond);
  if (b == nullptr) return;
  if (!b->caps().has(MOAT_CAP_TOKENIZE)) {
    return respond(error_response(ctx.metrics, unsupported(tok.model, "tokenization", "model"), route));
  }
  host::request_builder builder;
  std::vector<int32_t> tokens;
  std::string message;
  const moat_status st = b->tokenize(builder.tokenize(tok), tokens, message);
  if (st != MOAT_OK) return respond(error_response(ctx.metrics, backend_error(st, std::move(message)), route));
  http::response res;
  res.route = route;
  res.body = openai::tokenize_json(tokens, b->caps().max_context);
  respond(std::move(res));
}

}  // namespace moat::api

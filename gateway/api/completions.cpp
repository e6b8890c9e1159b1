// POST /v1/completions
#include "api/cache_salt.h"
#include "api/common.h"
#include "api/generation.h"
#include "api/request_trail.h"
#include "host/request_builder.h"

namespace moat::api {

void completions(api_context& ctx, const http::request& req, http::responder respond) {
  constexpr auto route = metrics::route::completions;
  auto trail = std::make_shared<request_trail>(ctx, req, route);
  auto parsed = openai::parse_completion_request(req.body);
  if (auto* err = std::get_if<openai::api_error>(&parsed)) {
    // Audited too (the model as named, if any); the body was not checked, so none of it is kept.
    trail->policy.model = model_named_in(req.body);
    return trail->wrap(std::move(respond))(error_response(ctx.metrics, *err, route));
  }
  auto& comp = std::get<openai::completion_request>(parsed);
  respond = trail->wrap(std::move(respond));
  trail->policy.model = comp.model;

  // Text prompts go through the policies; token prompts carry no text they could match.
  std::string body;
  if (trail->filters_responses()) {
    if (auto err = apply_prompt_policies(*trail, comp.prompts)) return respond(error_response(ctx.metrics, *err, route));
    comp.model = trail->policy.model;
    body = host::redacted_body_json(req.body, comp.model, nullptr, &comp.prompts, "prompt");
  } else {
    body = std::string(req.body);
  }
  trail->set_request_payload(body);  // as the client sent it (after policies), without the salt below
  if (auto err = apply_cache_salt(ctx, req, body)) return respond(error_response(ctx.metrics, *err, route));

  host::backend* b = find_backend(ctx, comp.model, route, respond);
  if (b == nullptr) return;
  const auto& caps = b->caps();
  if (!caps.has(MOAT_CAP_COMPLETIONS)) {
    return respond(error_response(ctx.metrics, unsupported(comp.model, "completions", "model"), route));
  }
  if (!caps.has(MOAT_CAP_TOKEN_PROMPTS)) {
    for (const auto& p : comp.prompts) {
      if (p.is_tokens) {
        return respond(error_response(ctx.metrics, unsupported(comp.model, "prompts given as token ids", "prompt"),
                                      route));
      }
    }
  }
  if (comp.sampling.logprobs && !caps.has(MOAT_CAP_LOGPROBS)) {
    return respond(error_response(ctx.metrics, unsupported(comp.model, "logprobs", "logprobs"), route));
  }

  generation_options opts;
  opts.chat = false;
  opts.stream = comp.stream;
  opts.include_usage = comp.stream && comp.stream_opts.include_usage;
  opts.logprobs = comp.sampling.logprobs;
  opts.choices = static_cast<uint32_t>(comp.sampling.n * std::max<size_t>(1, comp.prompts.size()));
  opts.route = route;
  opts.trail = trail;
  host::request_builder builder;
  start_generation(ctx, req, *b, std::move(opts), "cmpl-", comp.model, std::move(respond),
                   builder.completion(comp, body));
}

}  // namespace moat::api

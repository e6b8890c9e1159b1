// POST /v1/completions
#include "api/common.h"
#include "api/generation.h"
#include "api/open_request.h"
#include "host/request_builder.h"

namespace moat::api {

void completions(api_context& ctx, const http::request& req, http::responder respond) {
  constexpr auto route = metrics::route::completions;
  // Text prompts go through the policies; token prompts carry no text they could match.
  opened_request<openai::completion_request> opened(openai::parse_completion_request, req.body);
  if (!open_request(ctx, req, respond, opened, {route, MOAT_CAP_COMPLETIONS, "completions", true},
                    [](request_trail& trail, openai::completion_request& comp, std::string_view raw,
                       std::string& body) -> std::optional<openai::api_error> {
                      if (auto err = apply_prompt_policies(trail, comp.prompts)) return err;
                      comp.model = trail.policy.model;
                      body = host::redacted_body_json(raw, comp.model, nullptr, &comp.prompts,
                                                      "prompt");
                      return std::nullopt;
                    })) {
    return;  // answered
  }
  auto& comp = opened.parsed();
  host::backend* b = opened.backend;
  const auto& caps = b->caps();
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
  opts.trail = opened.trail;
  host::request_builder builder;
  start_generation(ctx, req, *b, std::move(opts), "cmpl-", comp.model, std::move(respond),
                   builder.completion(comp, opened.body()));
}

}  // namespace moat::api

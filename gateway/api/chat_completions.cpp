// POST /v1/chat/completions
#include "api/cache_salt.h"
#include "api/common.h"
#include "api/generation.h"
#include "api/request_trail.h"
#include "host/request_builder.h"

namespace moat::api {

void chat_completions(api_context& ctx, const http::request& req, http::responder respond) {
  constexpr auto route = metrics::route::chat_completions;
  auto trail = std::make_shared<request_trail>(ctx, req, route);
  auto parsed = openai::parse_chat_request(req.body);
  if (auto* err = std::get_if<openai::api_error>(&parsed)) {
    // Audited too (the model as named, if any); the body was not checked, so none of it is kept.
    trail->policy.model = model_named_in(req.body);
    return trail->wrap(std::move(respond))(error_response(ctx.metrics, *err, route));
  }
  auto& chat = std::get<openai::chat_request>(parsed);
  respond = trail->wrap(std::move(respond));
  trail->policy.model = chat.model;

  // The policies see (and may rewrite) the text before anything else does; from here on only
  // their result is used: the backend never sees the original.
  std::string body;
  if (trail->filters_responses()) {
    for (const auto& m : chat.messages) trail->policy.messages.push_back({m.role, m.content});
    if (auto err = trail->check_request()) return respond(error_response(ctx.metrics, *err, route));
    std::vector<openai::chat_message> redacted;
    redacted.reserve(trail->policy.messages.size());
    for (size_t i = 0; i < trail->policy.messages.size(); ++i) {
      auto& m = trail->policy.messages[i];
      redacted.push_back({m.role, m.content, i < chat.messages.size() ? chat.messages[i].name : std::string()});
    }
    chat.messages = std::move(redacted);
    chat.model = trail->policy.model;
    body = host::redacted_body_json(req.body, chat.model, &chat.messages, nullptr, {});
  } else {
    body = std::string(req.body);
  }
  trail->set_request_payload(body);  // as the client sent it (after policies), without the salt below
  if (auto err = apply_cache_salt(ctx, req, body)) return respond(error_response(ctx.metrics, *err, route));

  host::backend* b = find_backend(ctx, chat.model, route, respond);
  if (b == nullptr) return;
  const auto& caps = b->caps();
  if (!caps.has(MOAT_CAP_CHAT)) {
    return respond(error_response(ctx.metrics, unsupported(chat.model, "chat completions", "model"), route));
  }
  // No backend calls tools or constrains its output to JSON yet (the ABI has no capability for
  // either), so a request relying on them is refused as vLLM refuses what it was not started
  // for, instead of answering as if the field were not there. tool_choice "none" with tools is
  // fine: no call was wanted.
  if (!chat.tool_choice.empty() && chat.tool_choice != "none") {
    return respond(error_response(
        ctx.metrics, unsupported(chat.model, "tool calling (tool_choice \"" + chat.tool_choice + "\")", "tool_choice"),
        route));
  }
  if (chat.response_format != "text") {
    return respond(error_response(
        ctx.metrics, unsupported(chat.model, "response_format \"" + chat.response_format + "\"", "response_format"),
        route));
  }
  if (chat.sampling.logprobs && !caps.has(MOAT_CAP_LOGPROBS)) {
    return respond(error_response(ctx.metrics, unsupported(chat.model, "logprobs", "logprobs"), route));
  }
  if (chat.sampling.logprobs && static_cast<uint32_t>(chat.sampling.top_logprobs) > caps.max_top_logprobs) {
    return respond(error_response(
        ctx.metrics, unsupported(chat.model, "top_logprobs above " + std::to_string(caps.max_top_logprobs), "top_logprobs"),
        route));
  }

  generation_options opts;
  opts.chat = true;
  opts.stream = chat.stream;
  opts.include_usage = chat.stream && chat.stream_opts.include_usage;
  opts.logprobs = chat.sampling.logprobs;
  opts.choices = static_cast<uint32_t>(chat.sampling.n);
  opts.route = route;
  opts.trail = trail;
  host::request_builder builder;
  start_generation(ctx, req, *b, std::move(opts), "chatcmpl-", chat.model, std::move(respond), builder.chat(chat, body));
}

}  // namespace moat::api

// POST /v1/chat/completions
#include "api/common.h"
#include "api/generation.h"
#include "api/open_request.h"
#include "host/request_builder.h"

namespace moat::api {

void chat_completions(api_context& ctx, const http::request& req, http::responder respond) {
  constexpr auto route = metrics::route::chat_completions;
  opened_request<openai::chat_request> opened(openai::parse_chat_request, req.body);
  if (!open_request(ctx, req, respond, opened, {route, MOAT_CAP_CHAT, "chat completions", true},
                    [](request_trail& trail, openai::chat_request& chat, std::string_view raw,
                       std::string& body) -> std::optional<openai::api_error> {
                      for (const auto& m : chat.messages)
                        trail.policy.messages.push_back({m.role, m.content});
                      if (auto err = trail.check_request()) return err;
                      std::vector<openai::chat_message> redacted;
                      redacted.reserve(trail.policy.messages.size());
                      for (size_t i = 0; i < trail.policy.messages.size(); ++i) {
                        auto& m = trail.policy.messages[i];
                        redacted.push_back(
                            {m.role, m.content,
                             i < chat.messages.size() ? chat.messages[i].name : std::string()});
                      }
                      chat.messages = std::move(redacted);
                      chat.model = trail.policy.model;
                      body = host::redacted_body_json(raw, chat.model, &chat.messages, nullptr, {});
                      return std::nullopt;
                    })) {
    return;  // answered
  }
  auto& chat = opened.parsed();
  host::backend* b = opened.backend;
  const auto& caps = b->caps();
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
  opts.trail = opened.trail;
  host::request_builder builder;
  start_generation(ctx, req, *b, std::move(opts), "chatcmpl-", chat.model, std::move(respond),
                   builder.chat(chat, opened.body()));
}

}  // namespace moat::api

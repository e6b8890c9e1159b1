// The opening every model endpoint (chat, completions, embeddings) shares: the audit trail,
// parsing (a 400 is audited with the model as named), the request policies, the body the
// backend gets (cache_salt applied where the endpoint takes one), and the model's backend with
// the capability the endpoint needs. Each failure is answered through `respond` here; the
// endpoint goes on only with a value.
//
//   auto opened = open_request<openai::completion_request>(ctx, req, respond,
//       {metrics::route::completions, MOAT_CAP_COMPLETIONS, "completions", true},
//       openai::parse_completion_request,
//       [](request_trail& trail, openai::completion_request& r, std::string_view raw, std::string& body)
//           -> std::optional<openai::api_error> { ...; return std::nullopt; });
//   if (!opened) return;   // answered already
//   opened->backend->caps() ...
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "api/cache_salt.h"
#include "api/common.h"
#include "api/request_trail.h"

namespace moat::api {

template <class Request>
struct opened_request {
  Request parsed;                         // after the policies (model and text as rewritten)
  std::shared_ptr<request_trail> trail;   // its audit line; `respond` is wrapped to finish it
  std::string body;                       // the JSON the backend receives
  host::backend* backend = nullptr;       // offers `capability`
};

struct opening {
  metrics::route route;
  uint32_t capability;       // MOAT_CAP_* the model's backend must offer
  std::string_view feature;  // named in the 400 when it does not ("chat completions")
  bool cache_salt;           // the endpoint takes cache_salt
};

// Parse: std::variant<Request, openai::api_error>(std::string_view body).
// Policies: std::optional<openai::api_error>(request_trail&, Request&, std::string_view raw_body,
// std::string& body) — called only when the trail filters; rewrites the request and fills body.
template <class Request, class Parse, class Policies>
std::optional<opened_request<Request>> open_request(api_context& ctx, const http::request& req,
                                                    http::responder& respond, const opening& o, Parse&& parse,
                                                    Policies&& policies) {
  opened_request<Request> out;
  out.trail = std::make_shared<request_trail>(ctx, req, o.route);
  auto parsed = parse(req.body);
  if (auto* err = std::get_if<openai::api_error>(&parsed)) {
    // Audited too (the model as named, if any); the body was not checked, so none of it is kept.
    out.trail->policy.model = model_named_in(req.body);
    out.trail->wrap(std::move(respond))(error_response(ctx.metrics, *err, o.route));
    return std::nullopt;
  }
  out.parsed = std::move(std::get<Request>(parsed));
  respond = out.trail->wrap(std::move(respond));
  out.trail->policy.model = out.parsed.model;

  // The policies see (and may rewrite) the text before anything else does; from here on only
  // their result is used: the backend never sees the original.
  if (out.trail->filters_responses()) {
    if (auto err = policies(*out.trail, out.parsed, req.body, out.body)) {
      respond(error_response(ctx.metrics, *err, o.route));
      return std::nullopt;
    }
  } else {
    out.body = std::string(req.body);
  }
  out.trail->set_request_payload(out.body);  // as the client sent it (after policies), without the salt
  if (o.cache_salt) {
    if (auto err = apply_cache_salt(ctx, req, out.body)) {
      respond(error_response(ctx.metrics, *err, o.route));
      return std::nullopt;
    }
  }

  out.backend = find_backend(ctx, out.parsed.model, o.route, respond);
  if (out.backend == nullptr) return std::nullopt;
  if (!out.backend->caps().has(o.capability)) {
    respond(error_response(ctx.metrics, unsupported(out.parsed.model, o.feature, "model"), o.route));
    return std::nullopt;
  }
  return out;
}

}  // namespace moat::api

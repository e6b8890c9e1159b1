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

// Whether a parsed request's body has a top-level cache_salt; a request type that does not
// record it answers true, so apply_cache_salt looks at the body itself.
template <class Request>
bool names_cache_salt(const Request& r) {
  if constexpr (requires { r.cache_salt; }) {
    return r.cache_salt;
  } else {
    return true;
  }
}

template <class Request>
struct opened_request {
  Request parsed;                         // after the policies (model and text as rewritten)
  // Its audit line and policy set; `respond` is wrapped to finish it. Null when there is no
  // audit log and no policy (request_trail::open).
  std::shared_ptr<request_trail> trail;
  host::backend* backend = nullptr;       // offers `capability`

  // The JSON the backend receives: the client's body as sent (a view into the session's
  // buffer, valid until the answer) unless a policy or the cache_salt rewrote it.
  std::string_view body() const { return rewritten ? std::string_view(rewritten_body) : raw_body; }
  std::string& rewrite() {  // the body to rewrite in place, copied from the raw one the first time
    if (!rewritten) rewritten_body = std::string(raw_body);
    rewritten = true;
    return rewritten_body;
  }

  std::string_view raw_body;
  std::string rewritten_body;
  bool rewritten = false;
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
  out.raw_body = req.body;
  out.trail = request_trail::open(ctx, req, o.route);
  auto parsed = parse(req.body);
  if (auto* err = std::get_if<openai::api_error>(&parsed)) {
    // Audited too (the model as named, if any); the body was not checked, so none of it is kept.
    if (out.trail) {
      out.trail->policy.model = model_named_in(req.body);
      respond = out.trail->wrap(std::move(respond));
    }
    respond(error_response(ctx.metrics, *err, o.route));
    return std::nullopt;
  }
  out.parsed = std::move(std::get<Request>(parsed));
  if (out.trail) {
    respond = out.trail->wrap(std::move(respond));
    out.trail->policy.model = out.parsed.model;
  }

  // The policies see (and may rewrite) the text before anything else does; from here on only
  // their result is used: the backend never sees the original.
  if (out.trail && out.trail->filters_responses()) {
    out.rewritten = true;  // the policies write the whole body
    if (auto err = policies(*out.trail, out.parsed, req.body, out.rewritten_body)) {
      respond(error_response(ctx.metrics, *err, o.route));
      return std::nullopt;
    }
  }
  // As the client sent it (after policies), without the salt.
  if (out.trail) out.trail->set_request_payload(std::string(out.body()));
  // The salt is derived for keyed callers, and a client's own is checked; a body without
  // either passes as it is, uncopied. The parser saw whether the body names one (a policy's
  // rewrite keeps every field it does not redact), so the body is not searched for it.
  if (o.cache_salt && (caller_of(req) != nullptr || names_cache_salt(out.parsed))) {
    if (auto err = apply_cache_salt(ctx, req, out.rewrite())) {
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

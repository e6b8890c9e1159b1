// The opening every model endpoint (chat, completions, embeddings) shares: the audit trail,
// parsing (a 400 is audited with the model as named), the request policies, the body the
// backend gets (cache_salt applied where the endpoint takes one), and the model's backend with
// the capability the endpoint needs. Each failure is answered through `respond` here; the
// endpoint goes on only when open_request returns true.
//
//   opened_request<openai::completion_request> opened(openai::parse_completion_request, req.body);
//   if (!open_request(ctx, req, respond, opened,
//                     {metrics::route::completions, MOAT_CAP_COMPLETIONS, "completions", true},
//                     [](request_trail& trail, openai::completion_request& r, std::string_view raw,
//                        std::string& body) -> std::optional<openai::api_error> { ...; return
//                        std::nullopt; }))
//     return;   // answered already
//   opened.backend->caps() ...   opened.parsed() ...
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
  // Parse: std::variant<Request, openai::api_error>(std::string_view body). Its result is built
  // in place: a request is large (strings, vectors, sampling), and moving it from the parser's
  // result into a struct, and that into a return value, was ~400 instructions.
  template <class Parse>
  opened_request(Parse&& parse, std::string_view body)
      : parse_result(parse(body)), raw_body(body) {}
  opened_request(const opened_request&) = delete;
  opened_request& operator=(const opened_request&) = delete;

  std::variant<Request, openai::api_error> parse_result;
  // Its audit line and policy set; `respond` is wrapped to finish it. Null when there is no
  // audit log and no policy (request_trail::open).
  std::shared_ptr<request_trail> trail;
  host::backend* backend = nullptr;       // offers `capability`

  // The request after the policies (model and text as rewritten). Once open_request returned true.
  Request& parsed() { return *std::get_if<Request>(&parse_result); }

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

// `out` comes parsed from the request's body. Policies: std::optional<openai::api_error>(
// request_trail&, Request&, std::string_view raw_body,
// std::string& body) — called only when the trail filters; rewrites the request and fills body.
// False once an error was answered through `respond`.
template <class Request, class Policies>
bool open_request(api_context& ctx, const http::request& req, http::responder& respond,
                  opened_request<Request>& out, const opening& o, Policies&& policies) {
  out.trail = request_trail::open(ctx, req, o.route);
  if (auto* err = std::get_if<openai::api_error>(&out.parse_result)) {
    // Audited too (the model as named, if any); the body was not checked, so none of it is kept.
    if (out.trail) {
      out.trail->policy.model = model_named_in(req.body);
      respond = out.trail->wrap(std::move(respond));
    }
    respond(error_response(ctx.metrics, *err, o.route));
    return false;
  }
  Request& parsed = out.parsed();
  if (out.trail) {
    respond = out.trail->wrap(std::move(respond));
    out.trail->policy.model = parsed.model;
  }

  // The policies see (and may rewrite) the text before anything else does; from here on only
  // their result is used: the backend never sees the original.
  if (out.trail && out.trail->filters_responses()) {
    out.rewritten = true;  // the policies write the whole body
    if (auto err = policies(*out.trail, parsed, req.body, out.rewritten_body)) {
      respond(error_response(ctx.metrics, *err, o.route));
      return false;
    }
  }
  // As the client sent it (after policies), without the salt.
  if (out.trail) out.trail->set_request_payload(std::string(out.body()));
  // The salt is derived for keyed callers, and a client's own is checked; a body without
  // either passes as it is, uncopied. The parser saw whether the body names one (a policy's
  // rewrite keeps every field it does not redact), so the body is not searched for it.
  if (o.cache_salt && (caller_of(req) != nullptr || names_cache_salt(parsed))) {
    if (auto err = apply_cache_salt(ctx, req, out.rewrite())) {
      respond(error_response(ctx.metrics, *err, o.route));
      return false;
    }
  }

  out.backend = find_backend(ctx, parsed.model, o.route, respond);
  if (out.backend == nullptr) return false;
  if (!out.backend->caps().has(o.capability)) {
    respond(error_response(ctx.metrics, unsupported(parsed.model, o.feature, "model"), o.route));
    return false;
  }
  return true;
}

}  // namespace moat::api

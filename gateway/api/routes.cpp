// The route table: method and path to handler. Exact paths, plus one prefix for
// /v1/models/{id}; no regex on the hot path.
#include <fmt/format.h>

#include "api/api.h"
#include "api/errors.h"

namespace moat::api {

namespace {

using handler_fn = void (*)(api_context&, const http::request&, http::responder);

struct route_entry {
  std::string_view path;
  std::string_view method;
  handler_fn fn;
  metrics::route label;
};

constexpr route_entry routes[] = {
    {"/v1/chat/completions", "POST", chat_completions, metrics::route::chat_completions},
    {"/v1/completions", "POST", completions, metrics::route::completions},
    {"/v1/embeddings", "POST", embeddings, metrics::route::embeddings},
    {"/v1/models", "GET", list_models, metrics::route::models},
    {"/health", "GET", health, metrics::route::health},
    {"/metrics", "GET", metrics_text, metrics::route::metrics},
    {"/tokenize", "POST", tokenize, metrics::route::tokenize},
    {"/detokenize", "POST", detokenize, metrics::route::detokenize},
};
constexpr route_entry model_route = {"/v1/models/", "GET", get_model, metrics::route::model};

const route_entry* match(std::string_view path) {
  // A trailing slash is tolerated, as most servers do (/v1/models/ lists models).
  if (path.size() > 1 && path.back() == '/') {
    const auto trimmed = path.substr(0, path.size() - 1);
    for (const auto& r : routes) {
      if (r.path == trimmed) return &r;
    }
  }
  for (const auto& r : routes) {
    if (r.path == path) return &r;
  }
  if (path.size() > model_route.path.size() && path.starts_with(model_route.path)) return &model_route;
  return nullptr;
}

}  // namespace

void route_table::handle(const http::request& req, http::responder respond) {
  const route_entry* r = match(req.path);
  if (r == nullptr) {
    openai::api_error e = openai::invalid_request(
        fmt::format("Unknown request URL: {} {}. Please check the URL for typos.", req.method, req.path), {},
        "unknown_url");
    e.status = 404;
    return respond(error_response(ctx_.metrics, e, metrics::route::unknown));
  }
  if (req.method != r->method) {
    openai::api_error e = openai::invalid_request(
        fmt::format("Method {} is not allowed for {}; use {}", req.method, r->path, r->method), {},
        "method_not_allowed");
    e.status = 405;
    auto res = error_response(ctx_.metrics, e, r->label);
    res.headers.push_back({"Allow", std::string(r->method)});
    return respond(std::move(res));
  }
  r->fn(ctx_, req, std::move(respond));
}

}  // namespace moat::api

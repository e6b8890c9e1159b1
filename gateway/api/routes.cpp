// The route table: method and path to handler. Exact paths, plus one prefix for
// /v1/models/{id}; no regex on the hot path.
#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cctype>

#include "api/api.h"
#include "api/common.h"
#include "api/errors.h"
#include "auth/key_store.h"

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

// HEAD is served wherever GET is, as HTTP/1.1 asks (the session sends the head only).
bool method_allowed(const route_entry& r, std::string_view method) {
  return method == r.method || (method == "HEAD" && r.method == "GET");
}

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

// ---- API keys --------------------------------------------------------------------------------

http::response refusal(metrics::registry& metrics, const auth::decision& d, metrics::route route) {
  openai::api_error e;
  e.status = d.status;
  e.type = d.error_type;
  e.message = d.message;
  e.code = d.error_code;
  auto res = error_response(metrics, e, route);
  // The decision carries its own Retry-After (whole seconds until the bucket refills).
  const bool own_retry_after =
      std::any_of(d.headers.begin(), d.headers.end(), [](const auto& h) { return h.first == "Retry-After"; });
  if (own_retry_after) std::erase_if(res.headers, [](const http::header& h) { return h.name == "Retry-After"; });
  for (const auto& [name, value] : d.headers) res.headers.push_back({name, value});
  return res;
}

std::string percent_decoded(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The model a request names, for the key's allow-list: the body's "model" for POST routes, the
// id for /v1/models/{id}, "" otherwise (or when the body is not JSON: the handler answers 400).
std::string model_of(const route_entry& r, const http::request& req) {
  if (r.label == metrics::route::model) return percent_decoded(req.path.substr(r.path.size()));
  if (r.method != "POST" || req.body.empty()) return {};
  try {
    simdjson::ondemand::parser parser;
    simdjson::padded_string body(req.body);
    simdjson::ondemand::document doc = parser.iterate(body);
    std::string_view model;
    if (doc.get_object()["model"].get_string().get(model) == simdjson::SUCCESS) return std::string(model);
  } catch (const simdjson::simdjson_error&) {
  }
  return {};
}

// total_tokens from a usage object in `text` (a response body or one streamed event); 0 if none.
uint64_t usage_tokens(std::string_view text) {
  constexpr std::string_view key = "\"total_tokens\"";
  const size_t at = text.rfind(key);
  if (at == std::string_view::npos) return 0;
  size_t i = at + key.size();
  while (i < text.size() && (text[i] == ' ' || text[i] == ':')) ++i;
  uint64_t n = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) n = n * 10 + (text[i] - '0');
  return n;
}

// A streamed answer that charges the key's tpm when it ends and holds its max_concurrent slot
// until then, or until the session drops the stream because the client left. The charge is the
// source's own count of the tokens used (the backend's DONE usage), so a client that did not ask
// for a usage chunk pays as much as one that did; a usage chunk is the fallback for a source
// that does not count.
class metered_stream : public http::stream_source {
 public:
  metered_stream(std::shared_ptr<http::stream_source> inner, std::shared_ptr<auth::request_lease> lease)
      : inner_(std::move(inner)), lease_(std::move(lease)) {}
  void pull(next_fn next) override {
    // Weak: the source keeps this callback until it calls it; a strong ref would be a cycle.
    inner_->pull([source = std::weak_ptr<http::stream_source>(inner_), lease = lease_, tokens = tokens_, next = std::move(next)](
                     std::string data, bool last) {
      if (const uint64_t n = usage_tokens(data)) *tokens = n;
      if (last) {
        const auto alive = source.lock();
        lease->finish(std::max(*tokens, alive ? alive->tokens_used() : 0));
      }
      next(std::move(data), last);
    });
  }
  uint64_t tokens_used() const override { return inner_->tokens_used(); }
  bool ready() const override { return inner_->ready(); }

 private:
  std::shared_ptr<http::stream_source> inner_;
  std::shared_ptr<auth::request_lease> lease_;
  std::shared_ptr<uint64_t> tokens_ = std::make_shared<uint64_t>(0);
};

// Answers through `respond` with the key's x-ratelimit-* headers, charging tpm with the usage
// the answer reports and releasing the concurrency slot when the answer is complete.
http::responder metered(http::responder respond, auth::decision admitted) {
  auto lease = std::make_shared<auth::request_lease>(std::move(admitted.lease));
  return [respond = std::move(respond), lease = std::move(lease),
          headers = std::move(admitted.headers)](http::response res) mutable {
    for (const auto& [name, value] : headers) res.headers.push_back({name, value});
    if (res.stream) {
      res.stream = std::make_shared<metered_stream>(std::move(res.stream), lease);
    } else {
      lease->finish(usage_tokens(res.body));
    }
    lease.reset();
    respond(std::move(res));
  };
}

// GET /v1/models as a key sees it: only the models it may use. The list is small; re-emitting
// each kept card as minified JSON keeps the handler (models.cpp) unaware of keys.
std::string models_for(const auth::key_ref& who, const std::string& body) {
  try {
    simdjson::dom::parser parser;
    simdjson::dom::element doc = parser.parse(body);
    std::string out = R"({"object":"list","data":[)";
    bool first = true;
    for (simdjson::dom::element card : doc["data"].get_array()) {
      std::string_view id;
      if (card["id"].get_string().get(id) != simdjson::SUCCESS) continue;
      if (!auth::key_store::allows_model(who, id)) continue;
      if (!first) out.push_back(',');
      first = false;
      out += simdjson::minify(card);
    }
    out += "]}";
    return out;
  } catch (const simdjson::simdjson_error&) {
    return R"({"object":"list","data":[]})";  // never widen the list on a surprise
  }
}

// The matched route (or the 404/405 for none), once the key, if any, has been checked.
void serve(api_context& ctx, const route_entry* r, const http::request& req,
           http::responder respond) {
  if (r == nullptr) {
    openai::api_error e = openai::invalid_request(
        fmt::format("Unknown request URL: {} {}. Please check the URL for typos.", req.method, req.path), {},
        "unknown_url");
    e.status = 404;
    return respond(error_response(ctx.metrics, e, metrics::route::unknown));
  }
  if (!method_allowed(*r, req.method)) {
    openai::api_error e = openai::invalid_request(
        fmt::format("Method {} is not allowed for {}; use {}", req.method, r->path, r->method), {},
        "method_not_allowed");
    e.status = 405;
    auto res = error_response(ctx.metrics, e, r->label);
    res.headers.push_back({"Allow", r->method == "GET" ? std::string("GET, HEAD") : std::string(r->method)});
    return respond(std::move(res));
  }
  r->fn(ctx, req, std::move(respond));
}

}  // namespace

const caller* caller_of(const http::request& req) {
  return static_cast<const caller*>(req.caller.get());
}

void route_table::handle(const http::request& req_in, http::responder respond) {
  const route_entry* r = match(req_in.path);
  const bool keyed =
      ctx_.keys != nullptr && ctx_.keys->enabled() && !ctx_.keys->is_public_route(req_in.target);
  if (!keyed) return serve(ctx_, r, req_in, std::move(respond));
  // A copy that carries who is calling (its views still point into the session's buffers).
  http::request req = req_in;
  // Before anything else, unknown paths included: a 401 there tells a scanner nothing.
  const auto label = r ? r->label : metrics::route::unknown;
  auth::key_ref who;
  auto d = ctx_.keys->authenticate(req.target, req.header("authorization"), who);
  if (!d.allowed()) return respond(refusal(ctx_.metrics, d, label));
  auto c = std::make_shared<caller>();
  c->key = who;
  c->key_name = d.key_name;
  if (r != nullptr && method_allowed(*r, req.method)) {
    auto a = ctx_.keys->admit(who, model_of(*r, req));
    if (!a.allowed()) return respond(refusal(ctx_.metrics, a, label));
    if (c->key_name.empty()) c->key_name = a.key_name;
    respond = metered(std::move(respond), std::move(a));
    if (r->label == metrics::route::models) {
      respond = [who, respond = std::move(respond)](http::response res) mutable {
        if (res.status == 200 && !res.stream) res.body = models_for(who, res.body);
        respond(std::move(res));
      };
    }
  }
  req.caller = std::move(c);
  serve(ctx_, r, req, std::move(respond));
}

}  // namespace moat::api

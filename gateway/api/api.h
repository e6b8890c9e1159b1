// The OpenAI-compatible routes. One handler function per endpoint (a file each), one route
// table (routes.cpp) that maps method and path to them; handlers see only http::request and
// answer through the responder, never Beast.
//
//   moat::api::api_context ctx{host, registry, [&] { return server.state(); }};
//   moat::api::route_table routes(ctx);
//   moat::http::server server(cfg.server, routes, registry);
#pragma once

#include <functional>
#include <string>

#include "host/host.h"
#include "http/message.h"
#include "metrics/registry.h"
#include "openai/protocol.h"

namespace moat::policy {
class policy_manager;
struct request_context;
}  // namespace moat::policy
namespace moat::audit {
class audit_log;
}
namespace moat::auth {
class key_store;
}

namespace moat::api {

std::string make_cache_salt_secret();  // cache_salt.h

struct api_context {
  host::plugin_host& host;
  metrics::registry& metrics;
  std::function<http::lifecycle()> state;
  std::string system_fingerprint = "fp_moat";  // "fp_moat_<version>"
  int64_t created = 0;                         // unix seconds the models began loading
  // Policies and audit (serve_command owns both; null: none configured).
  policy::policy_manager* policies = nullptr;
  audit::audit_log* audit = nullptr;
  // API keys (serve_command owns it; null or disabled: every route is open). routes.cpp checks
  // the key before dispatch; handlers read who is calling through caller_of (common.h).
  auth::key_store* keys = nullptr;
  // Fills who is asking (the API key's name, the TLS client subject) into a request's policy
  // context, for the policies and the audit line. Set by the auth wiring; empty: anonymous.
  std::function<void(const http::request&, policy::request_context&)> identify = nullptr;
  // The per-process secret the cache_salt of keyed requests is derived from (cache_salt.h).
  std::string cache_salt_secret = make_cache_salt_secret();
};

// Endpoint handlers (each in its own file).
void chat_completions(api_context& ctx, const http::request& req, http::responder respond);
void completions(api_context& ctx, const http::request& req, http::responder respond);
void embeddings(api_context& ctx, const http::request& req, http::responder respond);
void list_models(api_context& ctx, const http::request& req, http::responder respond);
void get_model(api_context& ctx, const http::request& req, http::responder respond);
void health(api_context& ctx, const http::request& req, http::responder respond);
void metrics_text(api_context& ctx, const http::request& req, http::responder respond);
void tokenize(api_context& ctx, const http::request& req, http::responder respond);
void detokenize(api_context& ctx, const http::request& req, http::responder respond);

class route_table : public http::handler {
 public:
  explicit route_table(api_context& ctx) : ctx_(ctx) {}
  void handle(const http::request& req, http::responder respond) override;

 private:
  api_context& ctx_;
};

}  // namespace moat::api

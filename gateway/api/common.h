// Small pieces every endpoint handler shares: finding the model's backend (answering 404/503
// itself when it cannot), capability checks, and response identity.
#pragma once

#include <string>
#include <string_view>

#include "api/api.h"
#include "api/errors.h"
#include "api/generation.h"
#include "auth/key_store.h"

namespace moat::api {

// The backend serving `model`, or nullptr after answering 404 model_not_found (or 503 while
// loading) through `respond`.
host::backend* find_backend(api_context& ctx, std::string_view model, metrics::route route,
                            http::responder& respond);

// 400 for a feature the model's backend does not offer.
openai::api_error unsupported(std::string_view model, std::string_view what, std::string param);

int64_t unix_now();

// Who is calling, as the route table admitted the request (model and limits already checked).
struct caller {
  auth::key_ref key;     // the API key's record
  std::string key_name;  // for policies (ctx.key) and the audit line
};
// Null when API keys are off or the route is public.
const caller* caller_of(const http::request& req);

// Registers cancel-on-disconnect for an accepted call.
void cancel_when_client_leaves(const http::request& req, const std::shared_ptr<host::call>& call);

// The end both generation endpoints share, once the backend is chosen and the request checked:
// the response id (`id_prefix` + 24 random characters), the generation job answering through
// `respond`, and the submit of `request` (answered with the backend's refusal, or cancelled when
// the client leaves). `opts` arrives with its endpoint-specific fields set.
void start_generation(api_context& ctx, const http::request& req, host::backend& b, generation_options opts,
                      std::string_view id_prefix, std::string_view model, http::responder respond,
                      moat_request& request);

}  // namespace moat::api

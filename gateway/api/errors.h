// Errors as the client sees them: the moat_status -> HTTP status table (DESIGN.md section 3)
// and the response that carries an OpenAI error body.
//
//   auto err = moat::api::backend_error(MOAT_ERR_BUSY, "queue full");   // 429, rate_limit_error
//   respond(moat::api::error_response(ctx.metrics, err, route::chat_completions));
#pragma once

#include <string>
#include <string_view>

#include "http/message.h"
#include "metrics/registry.h"
#include "moat/backend.h"
#include "openai/protocol.h"

namespace moat::api {

// Maps every moat_status to the status, type and code OpenAI clients expect.
openai::api_error backend_error(moat_status status, std::string message);

openai::api_error model_not_found(std::string_view model);
openai::api_error not_loaded();  // 503 while the models are being created

// The response for `error` (Retry-After on 429 and 503), counted in moat_errors_total.
http::response error_response(metrics::registry& metrics, const openai::api_error& error,
                              metrics::route route);

}  // namespace moat::api

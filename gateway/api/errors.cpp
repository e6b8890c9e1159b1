#include "api/errors.h"

#include <fmt/format.h>

namespace moat::api {

namespace {

openai::api_error make(int status, std::string type, std::string message,
                       std::optional<std::string> code = {}) {
  openai::api_error e;
  e.status = status;
  e.type = std::move(type);
  e.message = std::move(message);
  e.code = std::move(code);
  return e;
}

}  // namespace

openai::api_error backend_error(moat_status status, std::string message) {
  if (message.empty()) message = "the backend failed";
  switch (status) {
    case MOAT_OK:  // a terminal error without a code: the backend's fault
    case MOAT_ERR_INTERNAL:
    case MOAT_ERR_IO:
      return make(500, "server_error", std::move(message));
    case MOAT_ERR_INVALID_ARGUMENT:
      return make(400, "invalid_request_error", std::move(message));
    case MOAT_ERR_UNSUPPORTED:
      return make(400, "invalid_request_error", std::move(message), "unsupported");
    case MOAT_ERR_CONTEXT_LENGTH:
      return make(400, "invalid_request_error", std::move(message), "context_length_exceeded");
    case MOAT_ERR_NOT_FOUND:
      return make(404, "not_found_error", std::move(message));
    case MOAT_ERR_BUSY:
      return make(429, "rate_limit_error", std::move(message), "queue_full");
    case MOAT_ERR_UPSTREAM:
      return make(502, "server_error", std::move(message), "upstream_error");
    case MOAT_ERR_UNAVAILABLE:
      return make(503, "server_error", std::move(message), "unavailable");
    case MOAT_ERR_TIMEOUT:
      return make(504, "timeout_error", std::move(message), "timeout");
    case MOAT_ERR_CANCELLED:
      return make(500, "server_error", std::move(message), "cancelled");
  }
  return make(500, "server_error", std::move(message));
}

openai::api_error model_not_found(std::string_view model) {
  auto e = make(404, "invalid_request_error",
                fmt::format("The model '{}' does not exist or you do not have access to it.", model),
                "model_not_found");
  e.param = "model";
  return e;
}

openai::api_error not_loaded() {
  return make(503, "server_error", "the models are still loading; retry shortly", "unavailable");
}

http::response error_response(metrics::registry& metrics, const openai::api_error& error,
                              metrics::route route) {
  metrics.error(error.type);
  http::response res;
  res.status = error.status;
  res.route = route;
  res.body = openai::error_json(error);
  if (error.status == 429 || error.status == 503) res.headers.push_back({"Retry-After", "1"});
  return res;
}

}  // namespace moat::api

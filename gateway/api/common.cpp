#include "api/common.h"

#include <fmt/format.h>

#include <chrono>

namespace moat::api {

host::backend* find_backend(api_context& ctx, std::string_view model, metrics::route route,
                            http::responder& respond) {
  if (!ctx.host.loaded()) {
    respond(error_response(ctx.metrics, not_loaded(), route));
    return nullptr;
  }
  host::backend* b = ctx.host.find(model);
  if (b == nullptr) respond(error_response(ctx.metrics, model_not_found(model), route));
  return b;
}

openai::api_error unsupported(std::string_view model, std::string_view what, std::string param) {
  auto e = openai::invalid_request(fmt::format("model '{}' does not support {}", model, what), std::move(param),
                                   "unsupported");
  return e;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void cancel_when_client_leaves(const http::request& req, const std::shared_ptr<host::call>& call) {
  if (!req.client || !call) return;
  req.client->on_gone([weak = std::weak_ptr<host::call>(call)] {
    if (auto c = weak.lock()) c->cancel();
  });
}

}  // namespace moat::api

// GET /health: 200 when every model is loaded and the server is not draining, else 503.
#include "api/api.h"

namespace moat::api {

void health(api_context& ctx, const http::request&, http::responder respond) {
  http::response res;
  res.route = metrics::route::health;
  const auto state = ctx.state ? ctx.state() : http::lifecycle::ready;
  if (state == http::lifecycle::ready && ctx.host.loaded()) {
    res.body = R"({"status":"ok"})";
  } else {
    res.status = 503;
    res.body = state == http::lifecycle::draining ? R"({"status":"draining"})" : R"({"status":"loading"})";
    res.headers.push_back({"Retry-After", "1"});
  }
  respond(std::move(res));
}

}  // namespace moat::api

// GET /metrics: Prometheus text format 0.0.4 (names in docs/metrics.md).
#include "api/api.h"

namespace moat::api {

void metrics_text(api_context& ctx, const http::request&, http::responder respond) {
  http::response res;
  res.route = metrics::route::metrics;
  res.content_type = "text/plain; version=0.0.4; charset=utf-8";
  const auto live = ctx.host.live();
  res.body = ctx.metrics.render(live);
  respond(std::move(res));
}

}  // namespace moat::api

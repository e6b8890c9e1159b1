#include "api/common.h"

#include "api/request_trail.h"
#include "http/wire.h"

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

void start_generation(api_context& ctx, const http::request& req, host::backend& b, generation_options opts,
                      std::string_view id_prefix, std::string_view model, http::responder respond,
                      moat_request& request) {
  // The id is made in a buffer this thread reuses: the job copies it (with the model and the
  // fingerprint) into its own storage, so it costs no allocation per request.
  thread_local std::string id;
  id.assign(id_prefix);
  http::append_random_alnum(id, 24);
  opts.meta = {id, unix_now(), model, ctx.system_fingerprint, /*id_plain=*/true};
  opts.request_id = req.request_id;
  if (opts.trail) opts.trail->set_id(id);
  auto job = std::make_shared<generation_job>(std::move(opts), std::move(respond), ctx.metrics);
  auto outcome = b.submit(request, job, req.strand);
  if (outcome.status != MOAT_OK) return job->reject(backend_error(outcome.status, std::move(outcome.message)));
  job->attach(outcome.handle);
  cancel_when_client_leaves(req, outcome.handle);
}

void cancel_when_client_leaves(const http::request& req, const std::shared_ptr<host::call>& call) {
  if (!req.client || !call) return;
  req.client->on_gone(call, [](host::call& c) { c.cancel(); });
}

}  // namespace moat::api

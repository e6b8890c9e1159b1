// POST /detokenize (vLLM's extension): token ids back into text.
#include "api/common.h"

namespace moat::api {

void detokenize(api_context& ctx, const http::request& req, http::responder respond) {
  constexpr auto route = metrics::route::detokenize;
  auto parsed = openai::parse_detokenize_request(req.body);
  if (auto* err = std::get_if<openai::api_error>(&parsed)) {
    return respond(error_response(ctx.metrics, *err, route));
  }
  const auto& detok = std::get<openai::detokenize_request>(parsed);
  host::backend* b = find_backend(ctx, detok.model, route, respond);
  if (b == nullptr) return;
  if (!b->caps().has(MOAT_CAP_TOKENIZE)) {
    return respond(error_response(ctx.metrics, unsupported(detok.model, "tokenization", "model"), route));
  }
  std::string text;
  std::string message;
  const moat_status st = b->detokenize(detok.tokens, text, message);
  if (st != MOAT_OK) return respond(error_response(ctx.metrics, backend_error(st, std::move(message)), route));
  http::response res;
  res.route = route;
  res.body = openai::detokenize_json(text);
  respond(std::move(res));
}

}  // namespace moat::api

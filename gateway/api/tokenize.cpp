// POST /tokenize (vLLM's extension): a prompt or chat messages into token ids.
#include "api/common.h"
#include "host/request_builder.h"

namespace moat::api {

void tokenize(api_context& ctx, const http::request& req, http::responder respond) {
  constexpr auto route = metrics::route::tokenize;
  auto parsed = openai::parse_tokenize_request(req.body);
  if (auto* err = std::get_if<openai::api_error>(&parsed)) {
    return respond(error_response(ctx.metrics, *err, route));
  }
  const auto& tok = std::get<openai::tokenize_request>(parsed);
  host::backend* b = find_backend(ctx, tok.model, route, respond);
  if (b == nullptr) return;
  if (!b->caps().has(MOAT_CAP_TOKENIZE)) {
    return respond(error_response(ctx.metrics, unsupported(tok.model, "tokenization", "model"), route));
  }
  host::request_builder builder;
  std::vector<int32_t> tokens;
  std::string message;
  const moat_status st = b->tokenize(builder.tokenize(tok), tokens, message);
  if (st != MOAT_OK) return respond(error_response(ctx.metrics, backend_error(st, std::move(message)), route));
  http::response res;
  res.route = route;
  res.body = openai::tokenize_json(tokens, b->caps().max_context);
  respond(std::move(res));
}

}  // namespace moat::api

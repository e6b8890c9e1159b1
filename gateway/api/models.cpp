// GET /v1/models and GET /v1/models/{id}
#include "api/common.h"

namespace moat::api {

namespace {

openai::model_card card_of(const api_context& ctx, const host::backend& b) {
  openai::model_card card;
  card.id = b.name();
  card.created = ctx.created;
  card.owned_by = b.caps().owned_by;
  if (b.caps().max_context > 0) card.max_model_len = b.caps().max_context;
  return card;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Model ids may hold '/' or ':' sent percent-encoded.
std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace

void list_models(api_context& ctx, const http::request&, http::responder respond) {
  std::vector<openai::model_card> cards;
  for (const auto* b : ctx.host.backends()) cards.push_back(card_of(ctx, *b));
  http::response res;
  res.route = metrics::route::models;
  res.body = openai::model_list_json(cards);
  respond(std::move(res));
}

void get_model(api_context& ctx, const http::request& req, http::responder respond) {
  constexpr auto route = metrics::route::model;
  constexpr std::string_view prefix = "/v1/models/";
  const std::string id = percent_decode(req.path.substr(prefix.size()));
  host::backend* b = find_backend(ctx, id, route, respond);
  if (b == nullptr) return;
  http::response res;
  res.route = route;
  res.body = openai::model_json(card_of(ctx, *b));
  respond(std::move(res));
}

}  // namespace moat::api

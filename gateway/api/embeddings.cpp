// POST /v1/embeddings
#include <spdlog/spdlog.h>

#include "api/common.h"
#include "api/open_request.h"
#include "host/request_builder.h"

namespace moat::api {

namespace {

// Collects one vector per input (by index) and answers once the backend is done.
class embedding_job : public host::event_sink {
 public:
  embedding_job(std::string model, std::string encoding_format, size_t inputs, http::responder respond,
                metrics::registry& metrics)
      : model_(std::move(model)),
        encoding_format_(std::move(encoding_format)),
        vectors_(inputs),
        respond_(std::move(respond)),
        metrics_(metrics) {}

  void reject(const openai::api_error& error) { answer(error_response(metrics_, error, route_)); }

  void on_event(host::owned_event&& event) override {
    switch (event.kind) {
      case MOAT_EVENT_EMBEDDING:
        if (event.index < vectors_.size()) vectors_[event.index] = std::move(event.embedding);
        break;
      case MOAT_EVENT_DONE: {
        for (size_t i = 0; i < vectors_.size(); ++i) {
          if (vectors_[i].empty()) {
            spdlog::error("embeddings for model '{}': the backend sent no vector for input {}", model_, i);
            return reject(backend_error(MOAT_ERR_INTERNAL, "the backend returned no embedding for an input"));
          }
        }
        http::response res;
        res.route = route_;
        res.body = openai::embeddings_json(model_, vectors_, encoding_format_, event.usage.prompt_tokens);
        answer(std::move(res));
        break;
      }
      case MOAT_EVENT_ERROR:
        reject(backend_error(event.error_code, std::move(event.error_message)));
        break;
      default:
        break;
    }
  }

 private:
  void answer(http::response res) {
    if (auto respond = std::move(respond_)) {
      respond_ = nullptr;
      respond(std::move(res));
    }
  }

  static constexpr metrics::route route_ = metrics::route::embeddings;
  std::string model_;
  std::string encoding_format_;
  std::vector<std::vector<float>> vectors_;
  http::responder respond_;
  metrics::registry& metrics_;
};

}  // namespace

void embeddings(api_context& ctx, const http::request& req, http::responder respond) {
  constexpr auto route = metrics::route::embeddings;
  // Inputs are request text like any prompt: the backend embeds only what the policies left.
  opened_request<openai::embedding_request> opened(openai::parse_embedding_request, req.body);
  if (!open_request(ctx, req, respond, opened, {route, MOAT_CAP_EMBEDDINGS, "embeddings", false},
                    [](request_trail& trail, openai::embedding_request& emb, std::string_view raw,
                       std::string& body) -> std::optional<openai::api_error> {
                      if (auto err = apply_prompt_policies(trail, emb.inputs)) return err;
                      emb.model = trail.policy.model;
                      body =
                          host::redacted_body_json(raw, emb.model, nullptr, &emb.inputs, "input");
                      return std::nullopt;
                    })) {
    return;  // answered
  }
  auto& emb = opened.parsed();
  host::backend* b = opened.backend;
  const auto& caps = b->caps();
  if (emb.dimensions && static_cast<uint32_t>(*emb.dimensions) != caps.embedding_dim) {
    return respond(error_response(
        ctx.metrics,
        openai::invalid_request("model '" + emb.model + "' returns " + std::to_string(caps.embedding_dim) +
                                    " dimensions; other values are not supported",
                                "dimensions"),
        route));
  }
  if (!caps.has(MOAT_CAP_TOKEN_PROMPTS)) {
    for (const auto& p : emb.inputs) {
      if (p.is_tokens) {
        return respond(error_response(ctx.metrics, unsupported(emb.model, "inputs given as token ids", "input"), route));
      }
    }
  }
  auto job = std::make_shared<embedding_job>(emb.model, emb.encoding_format, emb.inputs.size(), std::move(respond),
                                             ctx.metrics);
  host::request_builder builder;
  auto outcome = b->submit(builder.embedding(emb, opened.body()), job, req.strand);
  if (outcome.status != MOAT_OK) return job->reject(backend_error(outcome.status, std::move(outcome.message)));
  cancel_when_client_leaves(req, outcome.handle);
}

}  // namespace moat::api

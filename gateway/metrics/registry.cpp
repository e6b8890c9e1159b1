#include "metrics/registry.h"

#include <algorithm>

namespace moat::metrics {

namespace {

constexpr std::string_view route_labels[] = {
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models",
    "/v1/models/{id}",      "/health",         "/metrics",       "/tokenize",
    "/detokenize",          "unknown",
};
static_assert(std::size(route_labels) == static_cast<size_t>(route::count_));

constexpr std::string_view finish_labels[] = {"stop", "length", "content_filter", "abort"};
static_assert(std::size(finish_labels) == static_cast<size_t>(finish::count_));

// Writes a family's HELP and TYPE lines and records its name in `own` (the families a backend
// may not redeclare).
void header(std::string& out, std::vector<std::string_view>& own, std::string_view name, std::string_view type,
            std::string_view help) {
  own.push_back(name);
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

std::string model_label(std::string_view name) {
  std::string s = "model_name=\"";
  append_label_value(s, name);
  s += "\"";
  return s;
}

void sample(std::string& out, std::string_view name, std::string_view labels, double value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.push_back(' ');
  append_number(out, value);
  out.push_back('\n');
}

}  // namespace

std::string_view route_label(route r) { return route_labels[static_cast<size_t>(r)]; }

model_metrics::model_metrics(std::string model_name) : name(std::move(model_name)) {}

registry::registry(const std::vector<std::string>& model_names, std::string version,
                   std::string commit)
    : version_(std::move(version)), commit_(std::move(commit)) {
  for (const auto& n : model_names) models_.push_back(std::make_unique<model_metrics>(n));
}

void registry::http_request(route r, int status) {
  size_t slot = status_count_ - 1;
  for (size_t i = 0; i + 1 < status_count_; ++i) {
    if (statuses_[i] == status) {
      slot = i;
      break;
    }
  }
  http_[static_cast<size_t>(r)][slot].add();
}

void registry::error(std::string_view type) {
  size_t slot = error_type_count_ - 1;
  for (size_t i = 0; i + 1 < error_type_count_; ++i) {
    if (error_types_[i] == type) {
      slot = i;
      break;
    }
  }
  errors_[slot].add();
}

model_metrics* registry::model(std::string_view name) {
  for (auto& m : models_) {
    if (m->name == name) return m.get();
  }
  return nullptr;
}

std::string registry::render(std::span<const model_live> live) const {
  std::string out;
  out.reserve(16384);
  std::vector<std::string_view> own;

  // ---- vLLM-compatible per-model series --------------------------------------------------
  auto live_of = [&](std::string_view name) -> model_live {
    for (const auto& l : live) {
      if (l.name == name) return l;
    }
    return model_live{name};
  };
  header(out, own, "moat:num_requests_running", "gauge", "Number of requests running on the backend.");
  for (const auto& m : models_) {
    sample(out, "moat:num_requests_running", model_label(m->name),
           static_cast<double>(live_of(m->name).running));
  }
  header(out, own, "moat:num_requests_waiting", "gauge", "Number of requests waiting in the backend.");
  for (const auto& m : models_) {
    sample(out, "moat:num_requests_waiting", model_label(m->name),
           static_cast<double>(live_of(m->name).waiting));
  }
  header(out, own, "moat:kv_cache_usage_perc", "gauge", "KV-cache usage, 1 means 100 percent.");
  for (const auto& m : models_) {
    sample(out, "moat:kv_cache_usage_perc", model_label(m->name), live_of(m->name).kv_cache_usage);
  }
  header(out, own, "moat:prompt_tokens_total", "counter", "Number of prefill tokens processed.");
  for (const auto& m : models_) {
    sample(out, "moat:prompt_tokens_total", model_label(m->name),
           static_cast<double>(m->prompt_tokens.value()));
  }
  header(out, own, "moat:generation_tokens_total", "counter", "Number of generation tokens processed.");
  for (const auto& m : models_) {
    sample(out, "moat:generation_tokens_total", model_label(m->name),
           static_cast<double>(m->generation_tokens.value()));
  }
  header(out, own, "moat:request_success_total", "counter", "Count of successfully processed requests.");
  for (const auto& m : models_) {
    for (size_t f = 0; f < std::size(finish_labels); ++f) {
      std::string labels = model_label(m->name);
      labels.append(",finished_reason=\"").append(finish_labels[f]).append("\"");
      sample(out, "moat:request_success_total", labels, static_cast<double>(m->success[f].value()));
    }
  }
  header(out, own, "moat:e2e_request_latency_seconds", "histogram",
         "Histogram of end to end request latency in seconds.");
  for (const auto& m : models_) m->e2e_latency.render(out, "moat:e2e_request_latency_seconds", model_label(m->name));
  header(out, own, "moat:time_to_first_token_seconds", "histogram",
         "Histogram of time to first token in seconds.");
  for (const auto& m : models_) m->ttft.render(out, "moat:time_to_first_token_seconds", model_label(m->name));
  header(out, own, "moat:time_per_output_token_seconds", "histogram",
         "Histogram of time per output token in seconds.");
  for (const auto& m : models_) m->tpot.render(out, "moat:time_per_output_token_seconds", model_label(m->name));

  // ---- the gateway's own -----------------------------------------------------------------
  header(out, own, "moat_http_requests_total", "counter", "HTTP requests answered, by route and status.");
  for (size_t r = 0; r < http_.size(); ++r) {
    for (size_t s = 0; s < status_count_; ++s) {
      const uint64_t v = http_[r][s].value();
      if (v == 0) continue;  // a sparse table: only series that happened
      std::string labels = "route=\"";
      labels.append(route_labels[r]).append("\",status=\"");
      labels.append(statuses_[s] == 0 ? "other" : std::to_string(statuses_[s])).append("\"");
      sample(out, "moat_http_requests_total", labels, static_cast<double>(v));
    }
  }
  header(out, own, "moat_http_connections_active", "gauge", "Open client connections.");
  sample(out, "moat_http_connections_active", "", static_cast<double>(connections_active.value()));
  header(out, own, "moat_http_connections_refused_per_ip_total", "counter",
         "Connections closed at accept because their address held server.max_connections_per_ip.");
  sample(out, "moat_http_connections_refused_per_ip_total", "",
         static_cast<double>(connections_refused_per_ip.value()));
  header(out, own, "moat_http_bytes_received_total", "counter", "Request bytes read from clients.");
  sample(out, "moat_http_bytes_received_total", "", static_cast<double>(bytes_received.value()));
  header(out, own, "moat_http_bytes_sent_total", "counter", "Response bytes written to clients.");
  sample(out, "moat_http_bytes_sent_total", "", static_cast<double>(bytes_sent.value()));
  header(out, own, "moat_errors_total", "counter", "Error responses, by OpenAI error type.");
  for (size_t t = 0; t < error_type_count_; ++t) {
    std::string labels = "type=\"";
    labels.append(error_types_[t]).append("\"");
    sample(out, "moat_errors_total", labels, static_cast<double>(errors_[t].value()));
  }
  header(out, own, "moat_backend_queue_depth", "gauge", "Requests in flight toward each backend.");
  for (const auto& m : models_) {
    sample(out, "moat_backend_queue_depth", model_label(m->name),
           static_cast<double>(live_of(m->name).queue_depth));
  }
  header(out, own, "moat_build_info", "gauge", "The running moat's version and commit.");
  std::string labels = "version=\"";
  append_label_value(labels, version_);
  labels += "\",commit=\"";
  append_label_value(labels, commit_);
  labels += "\"";
  sample(out, "moat_build_info", labels, 1);

  // ---- what the backends add (the plugin ABI's `metrics` slot), checked in backend_exposition
  std::vector<backend_exposition> filtered;
  filtered.reserve(live.size());
  for (const auto& l : live) {
    if (!l.backend_families) continue;
    backend_exposition part;
    for (const auto& f : l.backend_families->families) {
      if (std::find(own.begin(), own.end(), f.name) == own.end()) part.families.push_back(f);
    }
    filtered.push_back(std::move(part));
  }
  std::vector<const backend_exposition*> parts;
  for (const auto& p : filtered) parts.push_back(&p);
  append_backend_families(out, parts);
  return out;
}

}  // namespace moat::metrics

// The cpu plugin's paged-KV glue: the request's cache_salt and the KV counters for /metrics.
#include <fmt/format.h>
#include <simdjson.h>

#include <cstddef>
#include <stdexcept>
#include <string>

#include "cpu_backend.h"

namespace moat::cpu {

// The request body's `cache_salt` (vLLM's field; with API keys the gateway puts a per-key salt
// there, docs/security.md): a string, absent or null = "". Anything else is the client's error.
std::string cache_salt(const moat_request& req) {
  if (req.struct_size < offsetof(moat_request, body_json) + sizeof(moat_str)) return {};
  if (req.body_json.data == nullptr || req.body_json.size == 0) return {};
  simdjson::dom::parser parser;
  simdjson::padded_string padded(std::string_view(req.body_json.data, req.body_json.size));
  simdjson::dom::object obj;
  if (parser.parse(padded).get_object().get(obj) != simdjson::SUCCESS) return {};
  simdjson::dom::element v;
  if (obj["cache_salt"].get(v) != simdjson::SUCCESS || v.is_null()) return {};
  std::string_view s;
  if (v.get_string().get(s) != simdjson::SUCCESS) throw std::invalid_argument("cache_salt must be a string");
  return std::string(s);
}

// The paged KV cache's counters for GET /metrics (vLLM's names with `moat:`; the host adds
// model_name). Atomics read without a lock: never blocks the engine.
moat_status cpu_metrics(moat_backend* b, moat_text_fn on_text, void* user_data) noexcept {
  if (!b || !on_text || !b->scheduler) return MOAT_ERR_INVALID_ARGUMENT;
  try {
    const auto s = b->scheduler->stats();
    const std::string text = fmt::format(
        "# HELP moat:prefix_cache_queries_total Prompt tokens looked up in the KV prefix cache.\n"
        "# TYPE moat:prefix_cache_queries_total counter\n"
        "moat:prefix_cache_queries_total {}\n"
        "# HELP moat:prefix_cache_hits_total Prompt tokens found in the KV prefix cache (not computed).\n"
        "# TYPE moat:prefix_cache_hits_total counter\n"
        "moat:prefix_cache_hits_total {}\n"
        "# HELP moat:num_preemptions_total Sequences preempted (to recompute) because the KV pool was full.\n"
        "# TYPE moat:num_preemptions_total counter\n"
        "moat:num_preemptions_total {}\n"
        "# HELP moat_kv_blocks_used KV blocks referenced by running sequences.\n"
        "# TYPE moat_kv_blocks_used gauge\n"
        "moat_kv_blocks_used {}\n"
        "# HELP moat_kv_blocks_total KV blocks in the pool.\n"
        "# TYPE moat_kv_blocks_total gauge\n"
        "moat_kv_blocks_total {}\n",
        s.prefix_cache_queries, s.prefix_cache_hits, s.preemptions, s.kv_blocks_used, s.kv_blocks_total);
    on_text(user_data, {text.data(), text.size()});
    return MOAT_OK;
  } catch (const std::exception&) {
    return MOAT_ERR_INTERNAL;
  }
}

}  // namespace moat::cpu

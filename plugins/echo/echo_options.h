// The echo backend's options (the model's `options:` map in moat.yaml, handed over as JSON).
//
//   echo_options options;
//   std::string problem;
//   if (!parse_options(R"({"chunk_chars":3,"fault":"hang"})", options, problem)) fail(problem);
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace moat::echo {

enum class fault_mode {
  none,
  fail_before_first,  // an ERROR (MOAT_ERR_INTERNAL) instead of the first delta
  fail_mid_stream,    // an ERROR after fault_after_deltas deltas
  hang,               // nothing until cancelled, then the terminal ERROR (MOAT_ERR_CANCELLED)
};

struct echo_options {
  uint32_t chunk_chars = 0;         // 0: one word (with its trailing space) per delta
  uint32_t delay_ms = 0;            // between deltas of one request
  fault_mode fault = fault_mode::none;
  uint32_t fault_after_deltas = 2;
  uint32_t max_context = 8192;      // words
  uint32_t embedding_dim = 64;
  uint32_t workers = 2;             // threads that emit events for all requests
  // answer: message (default) echoes the text as above; answer: body answers every chat and
  // completion choice with the request body (body_json) exactly as the backend received it,
  // so tests can see what the gateway forwards (policy rewrites, routed model, cache_salt).
  bool answer_body = false;
};

// Parses a JSON object (empty text = all defaults). Unknown keys, wrong types and values out of
// range fail with a message naming the option. Integers may also be given as digit strings,
// since YAML-to-JSON conversion can quote them.
bool parse_options(std::string_view json, echo_options& out, std::string& problem);

std::string_view fault_name(fault_mode mode);

}  // namespace moat::echo

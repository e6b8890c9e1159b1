// libmoat_echo.so — the reference backend plugin. It answers with what it received (after the
// gateway's request policies): a chat with the last user message, a completion with its prompt,
// embeddings with deterministic unit vectors. It exists so the gateway can be tested and
// benchmarked without a model, and as the example other plugins follow:
//  - every exported function is noexcept and turns any exception into a status code;
//  - submit() validates, copies and returns at once (it runs on the gateway's I/O thread);
//    the answer is planned and sent by the plugin's own worker threads (echo_scheduler), never
//    from inside submit();
//  - each accepted request gets exactly one terminal event (DONE or ERROR), also on cancel and
//    on destroy.
// Options: see echo_options.h and docs/plugins.md.
#include <moat/backend.h>

#include <cstddef>
#include <cstdio>
#include <memory>
#include <string>

#include "echo_job.h"
#include "echo_options.h"
#include "echo_scheduler.h"
#include "echo_text.h"
#include "echo_vocab.h"

// The opaque handle of the C ABI: one per configured model.
struct moat_backend {
  moat::echo::echo_options options;
  std::string model_name;
  moat::echo::vocabulary vocab;
  std::unique_ptr<moat::echo::scheduler> workers;
};

namespace moat::echo {
namespace {

constexpr std::string_view owned_by = "moat";

std::string_view view(moat_str s) {
  return s.size == 0 ? std::string_view() : std::string_view(s.data, s.size);
}

// OWNERSHIP: err is the caller's; we write a NUL-terminated, truncated message into it.
moat_status fail(moat_error* err, moat_status code, std::string_view message) {
  if (err != nullptr) {
    err->code = code;
    std::snprintf(err->message, sizeof err->message, "%.*s", static_cast<int>(message.size()),
                  message.data());
  }
  return code;
}

// True when a caller-owned struct of `struct_size` bytes contains the field ending at `end`:
// the ABI lets either side be older, so a reader or writer only touches what lies inside.
constexpr bool has_field(uint32_t struct_size, size_t end) { return struct_size >= end; }
#define MOAT_FIELD_END(type, field) (offsetof(type, field) + sizeof(((type*)nullptr)->field))

void log_info(const moat_backend_config* config, const std::string& message) {
  if (config->log == nullptr) return;
  config->log(config->log_user_data, MOAT_LOG_INFO, moat_str{message.data(), message.size()});
}

// Thread: the host's (a loader thread). May not block for long: echo loads nothing.
moat_status echo_create(const moat_backend_config* config, moat_backend** out,
                        moat_error* err) noexcept {
  try {
    if (config == nullptr || out == nullptr) {
      return fail(err, MOAT_ERR_INVALID_ARGUMENT, "echo: create() needs a config and an out");
    }
    auto backend = std::make_unique<moat_backend>();
    std::string problem;
    if (!parse_options(view(config->options_json), backend->options, problem)) {
      return fail(err, MOAT_ERR_INVALID_ARGUMENT, problem);
    }
    backend->model_name = view(config->model_name);
    backend->workers = std::make_unique<scheduler>(
        backend->options.workers, std::chrono::milliseconds(backend->options.delay_ms));
    const echo_options& o = backend->options;
    log_info(config, "echo: model '" + backend->model_name + "' ready (chunk_chars=" +
                         std::to_string(o.chunk_chars) + ", delay_ms=" +
                         std::to_string(o.delay_ms) + ", fault=" + std::string(fault_name(o.fault)) +
                         ", max_context=" + std::to_string(o.max_context) + ", workers=" +
                         std::to_string(o.workers) + ")");
    *out = backend.release();
    return MOAT_OK;
  } catch (const std::exception& e) {
    return fail(err, MOAT_ERR_INTERNAL, std::string("echo: create failed: ") + e.what());
  }
}

// Thread: any host thread, but never an event callback (it joins the workers).
void echo_destroy(moat_backend* backend) noexcept {
  if (backend == nullptr) return;
  backend->workers->shutdown();  // terminal events for every request still in flight
  delete backend;
}

moat_status echo_capabilities(moat_backend* backend, moat_capabilities* caps) noexcept {
  if (backend == nullptr || caps == nullptr) return MOAT_ERR_INVALID_ARGUMENT;
  const uint32_t size = caps->struct_size;
  if (has_field(size, MOAT_FIELD_END(moat_capabilities, flags))) {
    caps->flags = MOAT_CAP_CHAT | MOAT_CAP_COMPLETIONS | MOAT_CAP_EMBEDDINGS | MOAT_CAP_TOKENIZE |
                  MOAT_CAP_LOGPROBS | MOAT_CAP_TOKEN_PROMPTS;
  }
  if (has_field(size, MOAT_FIELD_END(moat_capabilities, max_context))) {
    caps->max_context = backend->options.max_context;
  }
  if (has_field(size, MOAT_FIELD_END(moat_capabilities, embedding_dim))) {
    caps->embedding_dim = backend->options.embedding_dim;
  }
  if (has_field(size, MOAT_FIELD_END(moat_capabilities, max_top_logprobs))) {
    caps->max_top_logprobs = 20;
  }
  if (has_field(size, MOAT_FIELD_END(moat_capabilities, owned_by))) {
    caps->owned_by = moat_str{owned_by.data(), owned_by.size()};  // static storage
  }
  return MOAT_OK;
}

// Thread: any. OWNERSHIP: request and all it points to are the host's and valid only during
// this call (echo_job::create copies what the worker needs, in one allocation); user_data is
// the host's and is handed back with every event until the terminal one.
moat_status echo_submit(moat_backend* backend, const moat_request* request,
                        moat_event_fn on_event, void* user_data, moat_error* err) noexcept {
  try {
    if (backend == nullptr || request == nullptr) {
      return fail(err, MOAT_ERR_INVALID_ARGUMENT, "echo: submit() needs a backend and a request");
    }
    moat_status status = MOAT_OK;
    auto job = echo_job::create(backend->options, backend->vocab, *request, on_event, user_data,
                                err, status);
    if (job == nullptr) return status;
    if (!backend->workers->start(std::move(job))) {
      return fail(err, MOAT_ERR_INVALID_ARGUMENT,
                  "echo: request id already in flight, or the backend is shutting down");
    }
    return MOAT_OK;
  } catch (const std::bad_alloc&) {
    return fail(err, MOAT_ERR_BUSY, "echo: out of memory");
  } catch (const std::exception& e) {
    return fail(err, MOAT_ERR_INTERNAL, std::string("echo: submit failed: ") + e.what());
  }
}

// Thread: any, including an event callback. Never blocks on generation.
void echo_cancel(moat_backend* backend, uint64_t request_id) noexcept {
  if (backend == nullptr) return;
  try {
    backend->workers->cancel(request_id);
  } catch (...) {
    // Only a failed lock could throw; the request then ends normally.
  }
}

// Thread: any; synchronous. Words become vocabulary ids; a chat is tokenized as the words of
// all its messages in order (echo has no chat template).
moat_status echo_tokenize(moat_backend* backend, const moat_tokenize_request* request,
                          moat_tokens_fn on_tokens, void* user_data, moat_error* err) noexcept {
  try {
    if (backend == nullptr || request == nullptr || on_tokens == nullptr) {
      return fail(err, MOAT_ERR_INVALID_ARGUMENT, "echo: tokenize() needs a request and a sink");
    }
    std::vector<int32_t> tokens;
    auto add_words = [&](std::string_view text) {
      for (std::string_view piece : split_pieces(text)) {
        const std::string_view word = piece_word(piece);
        if (!word.empty()) tokens.push_back(backend->vocab.id_of(word));
      }
    };
    if (request->message_count > 0 && request->messages != nullptr) {
      for (size_t i = 0; i < request->message_count; ++i) add_words(view(request->messages[i].content));
    } else {
      add_words(view(request->text));
    }
    on_tokens(user_data, tokens.data(), tokens.size());
    return MOAT_OK;
  } catch (const std::exception& e) {
    return fail(err, MOAT_ERR_INTERNAL, std::string("echo: tokenize failed: ") + e.what());
  }
}

moat_status echo_detokenize(moat_backend* backend, const int32_t* tokens, size_t count,
                            moat_text_fn on_text, void* user_data, moat_error* err) noexcept {
  try {
    if (backend == nullptr || on_text == nullptr || (tokens == nullptr && count != 0)) {
      return fail(err, MOAT_ERR_INVALID_ARGUMENT, "echo: detokenize() needs tokens and a sink");
    }
    std::string text;
    std::string word;
    for (size_t i = 0; i < count; ++i) {
      if (!backend->vocab.word_of(tokens[i], word)) {
        return fail(err, MOAT_ERR_INVALID_ARGUMENT,
                    "token id " + std::to_string(tokens[i]) + " is not in the vocabulary");
      }
      if (i != 0) text += ' ';
      text += word;
    }
    on_text(user_data, moat_str{text.data(), text.size()});
    return MOAT_OK;
  } catch (const std::exception& e) {
    return fail(err, MOAT_ERR_INTERNAL, std::string("echo: detokenize failed: ") + e.what());
  }
}

moat_status echo_stats(moat_backend* backend, moat_stats* stats) noexcept {
  if (backend == nullptr || stats == nullptr) return MOAT_ERR_INVALID_ARGUMENT;
  try {
    if (has_field(stats->struct_size, MOAT_FIELD_END(moat_stats, requests_running))) {
      stats->requests_running = static_cast<uint32_t>(backend->workers->in_flight());
    }
    if (has_field(stats->struct_size, MOAT_FIELD_END(moat_stats, requests_waiting))) {
      stats->requests_waiting = 0;  // echo admits every request at once
    }
    if (has_field(stats->struct_size, MOAT_FIELD_END(moat_stats, kv_cache_usage))) {
      stats->kv_cache_usage = 0.0;
    }
    return MOAT_OK;
  } catch (...) {
    return MOAT_ERR_INTERNAL;
  }
}

const moat_backend_api api_table = {
    sizeof(moat_backend_api),
    MOAT_BACKEND_ABI_VERSION,
    {"echo", 4},
    echo_create,
    echo_destroy,
    echo_capabilities,
    echo_submit,
    echo_cancel,
    echo_tokenize,
    echo_detokenize,
    echo_stats,
};

}  // namespace
}  // namespace moat::echo

extern "C" MOAT_EXPORT const moat_backend_api* moat_backend_entry(void) {
  return &moat::echo::api_table;
}

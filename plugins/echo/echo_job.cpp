// The submit side of an echo job: validation and one copy, on the caller's thread (the
// gateway's I/O thread, whose CPU time per request bounds the gateway's throughput). Planning
// and emitting are in echo_job_plan.cpp, on the workers.
#include "echo_job.h"

#include <charconv>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <new>

#include "echo_text.h"

namespace moat::echo {
namespace {

std::string_view view(moat_str s) {
  return s.size == 0 ? std::string_view() : std::string_view(s.data, s.size);
}

void set_error(moat_error* err, moat_status code, const std::string& message) {
  if (err == nullptr) return;
  err->code = code;
  std::snprintf(err->message, sizeof err->message, "%s", message.c_str());
}

// A prompt given as token ids is answered as their decimal ids joined by single spaces: one
// word per token. Bytes it needs at most: 11 per int32 ("-2147483648") and a space.
bool is_token_prompt(const moat_prompt& prompt) {
  return prompt.text.size == 0 && prompt.token_count != 0;
}
size_t token_prompt_bound(const moat_prompt& prompt) {
  return prompt.token_count * 12;
}

// Writes the token prompt's text at `out` (token_prompt_bound bytes); returns its length.
size_t write_token_prompt(const moat_prompt& prompt, char* out) {
  char* at = out;
  for (size_t i = 0; i < prompt.token_count; ++i) {
    if (i != 0) *at++ = ' ';
    at = std::to_chars(at, at + 11, prompt.tokens[i]).ptr;
  }
  return static_cast<size_t>(at - out);
}

// Appends `text` at `cursor` and returns the view of the copy.
std::string_view copy_to(char*& cursor, std::string_view text) {
  if (text.empty()) return {};
  std::memcpy(cursor, text.data(), text.size());
  const std::string_view copy(cursor, text.size());
  cursor += text.size();
  return copy;
}

}  // namespace

std::unique_ptr<echo_job> echo_job::create(const echo_options& options, vocabulary& vocab,
                                           const moat_request& request, moat_event_fn on_event,
                                           void* user_data, moat_error* err, moat_status& status) {
  status = MOAT_ERR_INVALID_ARGUMENT;
  if (request.struct_size < offsetof(moat_request, stream) ||
      request.sampling.struct_size < offsetof(moat_sampling, logit_bias)) {
    set_error(err, status, "echo: the request struct is older than this backend understands");
    return nullptr;
  }
  if (on_event == nullptr) {
    set_error(err, status, "echo: no event callback");
    return nullptr;
  }
  auto context_error = [&](size_t words) {
    status = MOAT_ERR_CONTEXT_LENGTH;
    set_error(err, status,
              "This model's maximum context length is " + std::to_string(options.max_context) +
                  " tokens. However, your prompt has " + std::to_string(words) + " tokens.");
    return nullptr;
  };

  // Validate, and size the copy. A text has at most as many words as bytes, so words are
  // counted here only when the bytes alone could exceed the context; the worker counts them
  // for usage.
  size_t text_count = 0;
  size_t text_bytes = 0;
  switch (request.kind) {
    case MOAT_REQUEST_CHAT: {
      if (request.message_count == 0 || request.messages == nullptr) {
        set_error(err, status, "echo: a chat request needs at least one message");
        return nullptr;
      }
      text_count = request.message_count;
      for (size_t i = 0; i < request.message_count; ++i) {
        text_bytes += request.messages[i].content.size;
      }
      if (text_bytes > options.max_context) {
        size_t words = 0;
        for (size_t i = 0; i < request.message_count; ++i) {
          words += count_words(view(request.messages[i].content));
        }
        if (words > options.max_context) return context_error(words);
      }
      break;
    }
    case MOAT_REQUEST_COMPLETION:
    case MOAT_REQUEST_EMBEDDING: {
      if (request.prompt_count == 0 || request.prompts == nullptr) {
        set_error(err, status, "echo: the request has no prompt");
        return nullptr;
      }
      text_count = request.prompt_count;
      for (size_t p = 0; p < request.prompt_count; ++p) {
        const moat_prompt& prompt = request.prompts[p];
        if (is_token_prompt(prompt)) {
          if (prompt.token_count > options.max_context) return context_error(prompt.token_count);
          text_bytes += token_prompt_bound(prompt);
          continue;
        }
        if (prompt.text.size > options.max_context) {
          const size_t words = count_words(view(prompt.text));
          if (words > options.max_context) return context_error(words);
        }
        text_bytes += prompt.text.size;
      }
      break;
    }
    default:
      status = MOAT_ERR_UNSUPPORTED;
      set_error(err, status, "echo: unknown request kind");
      return nullptr;
  }
  const moat_sampling& sampling = request.sampling;
  const bool with_body = options.answer_body && request.kind != MOAT_REQUEST_EMBEDDING;
  if (with_body) text_bytes += request.body_json.size;
  for (size_t i = 0; i < sampling.stop_count; ++i) text_bytes += sampling.stop[i].size;

  // One block: the job, then the views (sizeof(echo_job) is a multiple of its alignment, which
  // is at least a string_view's), then the bytes they view.
  static_assert(alignof(echo_job) >= alignof(std::string_view));
  const size_t view_count = text_count + sampling.stop_count;
  std::unique_ptr<echo_job> job(
      new (trailing_bytes{view_count * sizeof(std::string_view) + text_bytes}) echo_job());
  auto* views =
      reinterpret_cast<std::string_view*>(reinterpret_cast<char*>(job.get()) + sizeof(echo_job));
  for (size_t i = 0; i < view_count; ++i) new (views + i) std::string_view();
  char* cursor = reinterpret_cast<char*>(views + view_count);

  job->id_ = request.request_id;
  job->kind_ = request.kind;
  job->on_event_ = on_event;
  job->user_data_ = user_data;
  job->options_ = &options;
  job->vocab_ = &vocab;
  job->n_ = sampling.n == 0 ? 1 : sampling.n;
  job->max_tokens_ = sampling.max_tokens;
  job->logprobs_ = sampling.logprobs;
  job->echo_ = request.echo != 0;
  // A whole answer (see echo_job.h). An older host without the stream field is treated as
  // streaming: per-word deltas are right for either.
  const bool streamed =
      request.struct_size < offsetof(moat_request, stream) + sizeof request.stream ||
      request.stream != 0;
  job->whole_ = !streamed && options.delay_ms == 0 && options.fault == fault_mode::none;
  job->texts_ = views;
  job->text_count_ = text_count;
  job->last_user_ = text_count;
  if (request.kind == MOAT_REQUEST_CHAT) {
    for (size_t i = 0; i < text_count; ++i) {
      const moat_message& m = request.messages[i];
      views[i] = copy_to(cursor, view(m.content));
      if (view(m.role) == "user") job->last_user_ = i;
    }
  } else {
    for (size_t p = 0; p < text_count; ++p) {
      const moat_prompt& prompt = request.prompts[p];
      if (is_token_prompt(prompt)) {
        const size_t length = write_token_prompt(prompt, cursor);
        views[p] = std::string_view(cursor, length);
        cursor += length;
      } else {
        views[p] = copy_to(cursor, view(prompt.text));
      }
    }
  }
  job->stops_ = views + text_count;
  job->stop_count_ = sampling.stop_count;
  for (size_t i = 0; i < sampling.stop_count; ++i) {
    views[text_count + i] = copy_to(cursor, view(sampling.stop[i]));
  }
  if (with_body) job->body_ = copy_to(cursor, view(request.body_json));
  status = MOAT_OK;
  return job;
}

}  // namespace moat::echo

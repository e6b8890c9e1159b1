// A scripted backend for the host and API tests, built as a shared library like a real plugin.
// Options (substrings of options_json): "fail_create", "fail_submit", "hang" (no events until
// cancelled), "fail_mid" (a delta, then an ERROR), "busy" (submit answers MOAT_ERR_BUSY),
// "slow_second" (100 ms between the first delta and the rest of the answer), "two_choices"
// (choices 0 and 1 interleaved, each delta with its token's logprob),
// and for the `metrics` slot: "metrics_fail" (answers MOAT_ERR_INTERNAL after writing text),
// "metrics_junk" (good families mixed with lines the host must drop), "metrics_huge" (more
// text than the host keeps); otherwise two well-formed families in three pieces.
// Built three times: FAKE_ABI_VERSION selects a wrong ABI version for the refusal test;
// FAKE_OLD_TABLE declares the table size of a plugin built before the `metrics` slot existed
// (the slot is still filled in, so a host that read past struct_size would call it).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "moat/backend.h"

#ifndef FAKE_ABI_VERSION
#define FAKE_ABI_VERSION MOAT_BACKEND_ABI_VERSION
#endif

namespace {

std::atomic<int> g_cancels{0};
std::atomic<int> g_metrics_calls{0};

struct pending {
  uint64_t id;
  moat_event_fn fn;
  void* user;
  bool cancelled = false;
};

}  // namespace

struct moat_backend {
  std::string options;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<pending*> hanging;
  std::vector<std::thread> threads;
};

namespace {

void set_error(moat_error* err, moat_status code, const char* msg) {
  if (!err) return;
  err->code = code;
  std::snprintf(err->message, sizeof err->message, "%s", msg);
}

moat_event make(moat_event_kind kind) {
  moat_event ev;
  std::memset(&ev, 0, sizeof ev);
  ev.struct_size = sizeof ev;
  ev.kind = kind;
  return ev;
}

void emit_text(moat_event_fn fn, void* user, uint32_t index, const char* text, int32_t token) {
  moat_event ev = make(MOAT_EVENT_DELTA);
  ev.index = index;
  ev.text = moat_str{text, std::strlen(text)};
  ev.tokens = &token;
  ev.token_count = 1;
  fn(user, &ev);
}

// A delta of one token with its logprob (and one top alternative), for the "two_choices" script.
void emit_with_logprob(moat_event_fn fn, void* user, uint32_t index, const char* text,
                       float logprob) {
  moat_event ev = make(MOAT_EVENT_DELTA);
  ev.index = index;
  ev.text = moat_str{text, std::strlen(text)};
  const moat_token_logprob top{7, moat_str{"zz", 2}, -9.0f};
  moat_logprob_entry entry{};
  entry.chosen = moat_token_logprob{1, ev.text, logprob};
  entry.top = &top;
  entry.top_count = 1;
  ev.logprobs = &entry;
  ev.logprob_count = 1;
  fn(user, &ev);
}

void emit_finish(moat_event_fn fn, void* user, uint32_t index) {
  moat_event fin = make(MOAT_EVENT_FINISH);
  fin.index = index;
  fin.finish_reason = MOAT_FINISH_STOP;
  fn(user, &fin);
}

moat_status fake_create(const moat_backend_config* cfg, moat_backend** out, moat_error* err) noexcept {
  std::string options(cfg->options_json.data, cfg->options_json.size);
  if (options.find("fail_create") != std::string::npos) {
    set_error(err, MOAT_ERR_IO, "cannot read weights");
    return MOAT_ERR_IO;
  }
  auto* b = new moat_backend;
  b->options = options;
  *out = b;
  return MOAT_OK;
}

void fake_destroy(moat_backend* b) noexcept {
  {
    std::lock_guard lock(b->mu);
    for (auto* p : b->hanging) p->cancelled = true;
  }
  b->cv.notify_all();
  for (auto& t : b->threads) t.join();
  for (auto* p : b->hanging) delete p;
  delete b;
}

moat_status fake_capabilities(moat_backend*, moat_capabilities* caps) noexcept {
  caps->flags = MOAT_CAP_CHAT | MOAT_CAP_COMPLETIONS | MOAT_CAP_EMBEDDINGS | MOAT_CAP_TOKENIZE;
  caps->max_context = 2048;
  caps->embedding_dim = 3;
  caps->max_top_logprobs = 20;
  caps->owned_by = moat_str{"fake", 4};
  return MOAT_OK;
}

moat_status fake_submit(moat_backend* b, const moat_request* req, moat_event_fn fn, void* user,
                        moat_error* err) noexcept {
  if (b->options.find("fail_submit") != std::string::npos) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, "fake refuses this request");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  if (b->options.find("busy") != std::string::npos) {
    set_error(err, MOAT_ERR_BUSY, "fake is full");
    return MOAT_ERR_BUSY;
  }
  const bool hang = b->options.find("hang") != std::string::npos;
  const bool fail_mid = b->options.find("fail_mid") != std::string::npos;
  const bool slow_second = b->options.find("slow_second") != std::string::npos;
  const bool two_choices = b->options.find("two_choices") != std::string::npos;
  const auto kind = req->kind;
  const size_t inputs = req->prompt_count;
  auto* p = new pending{req->request_id, fn, user};
  std::lock_guard lock(b->mu);
  if (hang) b->hanging.push_back(p);
  b->threads.emplace_back([b, p, hang, fail_mid, slow_second, two_choices, kind, inputs] {
    if (hang) {
      std::unique_lock lock(b->mu);
      b->cv.wait(lock, [p] { return p->cancelled; });
      lock.unlock();
      moat_event ev = make(MOAT_EVENT_ERROR);
      ev.error_code = MOAT_ERR_CANCELLED;
      ev.error_message = moat_str{"cancelled", 9};
      p->fn(p->user, &ev);
      return;  // p stays in `hanging`; destroy frees it
    }
    if (kind == MOAT_REQUEST_EMBEDDING) {
      for (size_t i = 0; i < inputs; ++i) {
        const float v[3] = {1.0f, 0.0f, 0.0f};
        moat_event ev = make(MOAT_EVENT_EMBEDDING);
        ev.index = static_cast<uint32_t>(i);
        ev.embedding = v;
        ev.embedding_dim = 3;
        p->fn(p->user, &ev);
      }
    } else if (two_choices) {
      emit_with_logprob(p->fn, p->user, 0, "a", -0.5f);
      emit_with_logprob(p->fn, p->user, 1, "b", -1.5f);
      emit_with_logprob(p->fn, p->user, 0, "c", -0.25f);
      emit_finish(p->fn, p->user, 0);
      emit_with_logprob(p->fn, p->user, 1, "d", -2.0f);
      emit_finish(p->fn, p->user, 1);
    } else {
      emit_text(p->fn, p->user, 0, "hello", 1);
      if (fail_mid) {
        moat_event ev = make(MOAT_EVENT_ERROR);
        ev.error_code = MOAT_ERR_INTERNAL;
        ev.error_message = moat_str{"fake broke mid-stream", 21};
        p->fn(p->user, &ev);
        delete p;
        return;
      }
      if (slow_second) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      emit_text(p->fn, p->user, 0, " world", 2);
      moat_event fin = make(MOAT_EVENT_FINISH);
      fin.finish_reason = MOAT_FINISH_STOP;
      p->fn(p->user, &fin);
    }
    moat_event done = make(MOAT_EVENT_DONE);
    done.usage.prompt_tokens = 3;
    done.usage.completion_tokens = kind == MOAT_REQUEST_EMBEDDING ? 0 : 2;
    p->fn(p->user, &done);
    delete p;
  });
  return MOAT_OK;
}

void fake_cancel(moat_backend* b, uint64_t id) noexcept {
  g_cancels.fetch_add(1);
  {
    std::lock_guard lock(b->mu);
    for (auto* p : b->hanging) {
      if (p->id == id) p->cancelled = true;
    }
  }
  b->cv.notify_all();
}

moat_status fake_tokenize(moat_backend*, const moat_tokenize_request* req, moat_tokens_fn fn, void* user,
                          moat_error*) noexcept {
  std::vector<int32_t> tokens;
  for (size_t i = 0; i < req->text.size; ++i) tokens.push_back(static_cast<unsigned char>(req->text.data[i]));
  fn(user, tokens.data(), tokens.size());
  return MOAT_OK;
}

moat_status fake_detokenize(moat_backend*, const int32_t* tokens, size_t count, moat_text_fn fn, void* user,
                            moat_error* err) noexcept {
  std::string text;
  for (size_t i = 0; i < count; ++i) {
    if (tokens[i] < 0 || tokens[i] > 255) {
      set_error(err, MOAT_ERR_INVALID_ARGUMENT, "token id out of range");
      return MOAT_ERR_INVALID_ARGUMENT;
    }
    text.push_back(static_cast<char>(tokens[i]));
  }
  fn(user, moat_str{text.data(), text.size()});
  return MOAT_OK;
}

void text(moat_text_fn fn, void* user, const std::string& s) { fn(user, moat_str{s.data(), s.size()}); }

moat_status fake_metrics(moat_backend* b, moat_text_fn fn, void* user) noexcept {
  g_metrics_calls.fetch_add(1);
  if (b->options.find("metrics_huge") != std::string::npos) {
    const std::string line = "# a comment line that only takes room in the text, over and over\n";
    for (int i = 0; i < 20000; ++i) text(fn, user, line);  // ~1.3 MB
    return MOAT_OK;
  }
  text(fn, user, "# HELP moat_fake_temperature_celsius Fake device temperature\n# TYPE moat_fake_temp");
  text(fn, user, "erature_celsius gauge\nmoat_fake_temperature_celsius{device=\"0\"} 61\n");
  text(fn, user,
       "moat_fake_temperature_celsius{device=\"1\"} 64.5\n"
       "# HELP moat:fake_swaps_total Fake swaps\n# TYPE moat:fake_swaps_total counter\n"
       "moat:fake_swaps_total 3\n");
  if (b->options.find("metrics_junk") != std::string::npos) {
    text(fn, user,
         "# TYPE other_family gauge\nother_family 1\n"             // not a moat family
         "# TYPE moat:num_requests_running gauge\n"                   // the gateway's own
         "moat:num_requests_running 99\n"
         "moat_fake_temperature_celsius{device=\"2\"} 70\n"         // after its family closed
         "# TYPE moat_fake_temperature_celsius gauge\n"               // declared twice
         "# TYPE moat_fake_broken gauge\n"
         "moat_fake_broken{device=\"0} 1\n"                          // unterminated label
         "moat_fake_broken{model_name=\"spoof\"} 1\n"               // the host's label
         "moat_fake_broken NaNa\n"                                   // not a number
         "moat_fake_broken{device=\"9\"} 2\n"                       // kept
         "moat_fake_broken{device=\"9\"} 3\n");                     // same series again
  }
  if (b->options.find("metrics_fail") != std::string::npos) return MOAT_ERR_INTERNAL;
  return MOAT_OK;
}

#ifdef FAKE_OLD_TABLE
// What a plugin built before the `metrics` slot declares.
constexpr uint32_t table_size = offsetof(moat_backend_api, metrics);
#else
constexpr uint32_t table_size = sizeof(moat_backend_api);
#endif

const moat_backend_api api = {
    table_size,        FAKE_ABI_VERSION, {"fake", 4}, fake_create,   fake_destroy,    fake_capabilities,
    fake_submit,       fake_cancel,      fake_tokenize, fake_detokenize, nullptr /* stats */,
    fake_metrics,
};

}  // namespace

extern "C" MOAT_EXPORT const moat_backend_api* moat_backend_entry(void) { return &api; }
// Test hook: how many cancel() calls reached the plugin.
extern "C" MOAT_EXPORT int fake_plugin_cancels(void) { return g_cancels.load(); }
// Test hook: how many metrics() calls reached the plugin.
extern "C" MOAT_EXPORT int fake_plugin_metrics_calls(void) { return g_metrics_calls.load(); }

// A minimal fake host for libmoat_cpu.so: dlopens the plugin, creates an instance and collects
// each request's events (copied, as the ABI requires) until its terminal event.
#pragma once

#include <dlfcn.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "moat/backend.h"

namespace moat::testing {

struct collected_choice {
  std::string text;
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;       // chosen token's logprob, one per token
  std::vector<size_t> top_counts;    // alternatives per token
  moat_finish_reason finish = MOAT_FINISH_NONE;
  int deltas = 0;
};

class collector {
 public:
  static void on_event(void* user, const moat_event* e) { static_cast<collector*>(user)->add(*e); }

  void add(const moat_event& e) {
    std::lock_guard lock(mutex_);
    if (terminals > 0) event_after_terminal = true;
    switch (e.kind) {
      case MOAT_EVENT_DELTA: {
        auto& c = choices[e.index];
        c.text.append(e.text.data ? e.text.data : "", e.text.size);
        c.tokens.insert(c.tokens.end(), e.tokens, e.tokens + e.token_count);
        for (size_t i = 0; i < e.logprob_count; ++i) {
          c.logprobs.push_back(e.logprobs[i].chosen.logprob);
          c.top_counts.push_back(e.logprobs[i].top_count);
        }
        ++c.deltas;
        break;
      }
      case MOAT_EVENT_FINISH: choices[e.index].finish = e.finish_reason; break;
      case MOAT_EVENT_EMBEDDING: embeddings[e.index].assign(e.embedding, e.embedding + e.embedding_dim); break;
      case MOAT_EVENT_DONE:
        usage = e.usage;
        ++terminals;
        break;
      case MOAT_EVENT_ERROR:
        error = e.error_code;
        error_message.assign(e.error_message.data ? e.error_message.data : "", e.error_message.size);
        ++terminals;
        break;
    }
    cv_.notify_all();
  }

  bool wait(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return terminals > 0; });
  }

  std::map<uint32_t, collected_choice> choices;
  std::map<uint32_t, std::vector<float>> embeddings;
  moat_usage usage{};
  moat_status error = MOAT_OK;
  std::string error_message;
  int terminals = 0;
  bool event_after_terminal = false;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
};

class plugin {
 public:
  explicit plugin(const std::string& path) {
    handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_) return;
    auto entry = reinterpret_cast<moat_backend_entry_fn>(dlsym(handle_, MOAT_BACKEND_ENTRY_SYMBOL));
    if (entry) api = entry();
  }
  ~plugin() {
    if (handle_) dlclose(handle_);
  }
  const moat_backend_api* api = nullptr;

 private:
  void* handle_ = nullptr;
};

inline moat_str str(const std::string& s) { return {s.data(), s.size()}; }

// A request with the ABI's defaults (greedy unless changed).
struct request_builder {
  request_builder(uint64_t id, moat_request_kind kind) {
    req.struct_size = sizeof req;
    req.request_id = id;
    req.kind = kind;
    req.sampling.struct_size = sizeof req.sampling;
    req.sampling.temperature = 0.0f;
    req.sampling.top_p = 1.0f;
    req.sampling.max_tokens = 16;
    req.sampling.n = 1;
    req.sampling.logprobs = -1;
    req.add_generation_prompt = 1;
  }
  request_builder& text_prompt(const std::string& text) {
    texts.push_back(text);
    return *this;
  }
  request_builder& token_prompt(std::vector<int32_t> ids) {
    token_lists.push_back(std::move(ids));
    return *this;
  }
  request_builder& message(const std::string& role, const std::string& content) {
    roles.push_back(role);
    contents.push_back(content);
    return *this;
  }
  const moat_request& build() {
    prompts.clear();
    for (auto& t : texts) prompts.push_back({sizeof(moat_prompt), str(t), nullptr, 0});
    for (auto& ids : token_lists) prompts.push_back({sizeof(moat_prompt), {nullptr, 0}, ids.data(), ids.size()});
    messages.clear();
    for (size_t i = 0; i < roles.size(); ++i)
      messages.push_back({sizeof(moat_message), str(roles[i]), str(contents[i]), {nullptr, 0}});
    stop_strs.clear();
    for (auto& s : stops) stop_strs.push_back(str(s));
    req.prompts = prompts.data();
    req.prompt_count = prompts.size();
    req.messages = messages.data();
    req.message_count = messages.size();
    req.sampling.stop = stop_strs.data();
    req.sampling.stop_count = stop_strs.size();
    req.sampling.logit_bias = biases.data();
    req.sampling.logit_bias_count = biases.size();
    return req;
  }

  moat_request req{};
  std::vector<std::string> texts, roles, contents, stops;
  std::vector<std::vector<int32_t>> token_lists;
  std::vector<moat_logit_bias> biases;

 private:
  std::vector<moat_prompt> prompts;
  std::vector<moat_message> messages;
  std::vector<moat_str> stop_strs;
};

}  // namespace moat::testing

// Test harness: loads libmoat_echo.so with dlopen, creates instances through its table, and
// records the events of one request with the checks the ABI promises (never re-entrant,
// nothing after the terminal event, never from inside submit()).
#pragma once

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <moat/backend.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace moat::echo::testing {

inline const moat_backend_api* load_echo() {
  static void* handle = dlopen(MOAT_BINARY_DIR "/lib/moat/libmoat_echo.so", RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    ADD_FAILURE() << "dlopen: " << dlerror();
    return nullptr;
  }
  auto entry = reinterpret_cast<moat_backend_entry_fn>(dlsym(handle, MOAT_BACKEND_ENTRY_SYMBOL));
  if (entry == nullptr) {
    ADD_FAILURE() << "no " << MOAT_BACKEND_ENTRY_SYMBOL;
    return nullptr;
  }
  return entry();
}

struct recorded_event {
  moat_event_kind kind{};
  uint32_t index = 0;
  std::string text;
  std::vector<int32_t> tokens;
  std::vector<moat_token_logprob> chosen;  // text pointers not kept: only token and logprob
  std::vector<std::string> chosen_text;
  std::vector<size_t> top_counts;
  std::vector<bool> top_matches_chosen;
  moat_finish_reason finish{};
  std::vector<float> embedding;
  moat_usage usage{};
  moat_status error_code = MOAT_OK;
  std::string error_message;
};

class recorder {
 public:
  static void on_event(void* user_data, const moat_event* event) {
    static_cast<recorder*>(user_data)->record(*event);
  }

  // Blocks until the terminal event or the timeout; true when it came.
  bool wait_terminal(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return terminals_ > 0; });
  }
  bool wait_events(size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return events_.size() >= count; });
  }
  std::vector<recorded_event> events() {
    std::lock_guard lock(mutex_);
    return events_;
  }
  int terminals() {
    std::lock_guard lock(mutex_);
    return terminals_;
  }
  const recorded_event& terminal() {
    std::lock_guard lock(mutex_);
    return events_.back();
  }
  // Text of all deltas of one choice, in order.
  std::string text_of(uint32_t index) {
    std::string out;
    for (const auto& e : events()) {
      if (e.kind == MOAT_EVENT_DELTA && e.index == index) out += e.text;
    }
    return out;
  }
  std::thread::id submitting_thread = std::this_thread::get_id();

 private:
  void record(const moat_event& event) {
    // From inside submit() an event would arrive on the submitting thread.
    EXPECT_NE(std::this_thread::get_id(), submitting_thread) << "event on the caller's thread";
    EXPECT_FALSE(in_callback_.exchange(true)) << "callback entered re-entrantly";
    recorded_event r;
    r.kind = event.kind;
    r.index = event.index;
    r.text.assign(event.text.data == nullptr ? "" : event.text.data, event.text.size);
    r.tokens.assign(event.tokens, event.tokens + event.token_count);
    for (size_t i = 0; i < event.logprob_count; ++i) {
      const moat_logprob_entry& entry = event.logprobs[i];
      r.chosen.push_back(entry.chosen);
      r.chosen_text.emplace_back(entry.chosen.text.data, entry.chosen.text.size);
      r.top_counts.push_back(entry.top_count);
      r.top_matches_chosen.push_back(entry.top_count == 0 ||
                                     (entry.top[0].token == entry.chosen.token &&
                                      entry.top[0].logprob == entry.chosen.logprob));
    }
    r.finish = event.finish_reason;
    if (event.embedding != nullptr) {
      r.embedding.assign(event.embedding, event.embedding + event.embedding_dim);
    }
    r.usage = event.usage;
    r.error_code = event.error_code;
    r.error_message.assign(event.error_message.data == nullptr ? "" : event.error_message.data,
                           event.error_message.size);
    // Everything under the lock: once a waiter sees the terminal event it may destroy this
    // recorder, as a host frees its user_data at the terminal event.
    std::lock_guard lock(mutex_);
    EXPECT_EQ(terminals_, 0) << "event after the terminal event";
    events_.push_back(std::move(r));
    if (event.kind == MOAT_EVENT_DONE || event.kind == MOAT_EVENT_ERROR) ++terminals_;
    in_callback_.store(false);
    cv_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<recorded_event> events_;
  int terminals_ = 0;
  std::atomic<bool> in_callback_{false};
};

// A request under construction; owns every string the moat_request points to.
struct request_builder {
  moat_request request{};
  std::vector<moat_message> messages;
  std::vector<moat_prompt> prompts;
  std::vector<std::string> strings;  // reserve()d, so views stay valid
  std::vector<std::vector<int32_t>> token_lists;
  std::vector<moat_str> stops;

  request_builder(moat_request_kind kind, uint64_t id) {
    strings.reserve(64);
    token_lists.reserve(16);
    request.struct_size = sizeof request;
    request.request_id = id;
    request.kind = kind;
    request.sampling.struct_size = sizeof request.sampling;
    request.sampling.temperature = 1.0f;
    request.sampling.top_p = 1.0f;
    request.sampling.max_tokens = -1;
    request.sampling.n = 1;
    request.sampling.logprobs = -1;
    request.add_generation_prompt = 1;
    // Streamed: the plugin sends a delta per word (or chunk). A whole answer (stream 0) is one
    // delta per choice; echo_whole_test.cpp compares the two.
    request.stream = 1;
  }
  moat_str keep(std::string text) {
    strings.push_back(std::move(text));
    return moat_str{strings.back().data(), strings.back().size()};
  }
  request_builder& message(std::string role, std::string content) {
    moat_message m{};
    m.struct_size = sizeof m;
    m.role = keep(std::move(role));
    m.content = keep(std::move(content));
    messages.push_back(m);
    return *this;
  }
  request_builder& prompt(std::string text) {
    moat_prompt p{};
    p.struct_size = sizeof p;
    p.text = keep(std::move(text));
    prompts.push_back(p);
    return *this;
  }
  request_builder& token_prompt(std::vector<int32_t> tokens) {
    token_lists.push_back(std::move(tokens));
    moat_prompt p{};
    p.struct_size = sizeof p;
    p.tokens = token_lists.back().data();
    p.token_count = token_lists.back().size();
    prompts.push_back(p);
    return *this;
  }
  request_builder& stop(std::string text) {
    stops.push_back(keep(std::move(text)));
    return *this;
  }
  const moat_request* get() {
    request.messages = messages.data();
    request.message_count = messages.size();
    request.prompts = prompts.data();
    request.prompt_count = prompts.size();
    request.sampling.stop = stops.data();
    request.sampling.stop_count = stops.size();
    return &request;
  }
};

class echo_fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    api_ = load_echo();
    ASSERT_NE(api_, nullptr);
  }
  void TearDown() override {
    for (moat_backend* b : backends_) api_->destroy(b);
  }
  moat_backend* create(const std::string& options_json, moat_error* err_out = nullptr) {
    moat_backend_config config{};
    config.struct_size = sizeof config;
    config.model_name = moat_str{"echo-test", 9};
    config.options_json = moat_str{options_json.data(), options_json.size()};
    moat_error err{};
    err.struct_size = sizeof err;
    moat_backend* backend = nullptr;
    const moat_status status = api_->create(&config, &backend, &err);
    if (err_out != nullptr) *err_out = err;
    if (status != MOAT_OK) return nullptr;
    backends_.push_back(backend);
    return backend;
  }
  // Destroys early (the fixture would otherwise destroy at TearDown).
  void destroy(moat_backend* backend) {
    std::erase(backends_, backend);
    api_->destroy(backend);
  }
  moat_status submit(moat_backend* backend, request_builder& builder, recorder& rec,
                     moat_error* err_out = nullptr) {
    moat_error err{};
    err.struct_size = sizeof err;
    const moat_status status = api_->submit(backend, builder.get(), recorder::on_event, &rec, &err);
    if (err_out != nullptr) *err_out = err;
    return status;
  }

  // The backend's running count once it drops to 0, or after ~1 s of polling (a worker forgets
  // a job just after its terminal event, so allow it a moment).
  uint64_t running_after_settling(moat_backend* backend) {
    moat_stats stats{};
    stats.struct_size = sizeof stats;
    for (int tries = 0; tries < 200; ++tries) {
      if (api_->stats(backend, &stats) != MOAT_OK) return UINT64_MAX;
      if (stats.requests_running == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return stats.requests_running;
  }

  const moat_backend_api* api_ = nullptr;
  std::vector<moat_backend*> backends_;
};

}  // namespace moat::echo::testing

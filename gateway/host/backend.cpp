#include "host/backend.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "host/block_cache.h"
#include "host/completions.h"

namespace moat::host {

namespace {

moat_str as_str(const std::string& s) { return moat_str{s.data(), s.size()}; }

std::string message_of(const moat_error& err) {
  // The plugin writes a NUL-terminated message; guard against one that did not.
  return std::string(err.message, strnlen(err.message, sizeof err.message));
}

void init_error(moat_error& err) {
  std::memset(&err, 0, sizeof err);
  err.struct_size = sizeof err;
  err.code = MOAT_OK;
}

}  // namespace

uint64_t next_request_id() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

backend::backend(const config::model_config& model, std::shared_ptr<plugin_library> plugin,
                 std::filesystem::path config_dir, metrics::registry& metrics,
                 std::chrono::milliseconds request_timeout)
    : model_(model),
      plugin_(std::move(plugin)),
      config_dir_(std::move(config_dir)),
      metrics_(metrics.model(model.name)),
      request_timeout_(request_timeout) {}

backend::~backend() {
  if (handle_ != nullptr) plugin_->api().destroy(handle_);
  alive_->store(false);
}

void backend::log_sink(void* user_data, moat_log_level level, moat_str message) noexcept {
  try {
    auto* self = static_cast<backend*>(user_data);
    const std::string_view text(message.data ? message.data : "", message.data ? message.size : 0);
    const auto lvl = level == MOAT_LOG_DEBUG  ? spdlog::level::debug
                     : level == MOAT_LOG_INFO ? spdlog::level::info
                     : level == MOAT_LOG_WARN ? spdlog::level::warn
                                              : spdlog::level::err;
    spdlog::log(lvl, "[{}] {}", self->model_.name, text);
  } catch (...) {
    // Logging must never throw into a plugin.
  }
}

void backend::create() {
  const auto& api = plugin_->api();
  const std::string dir = config_dir_.string();
  moat_backend_config cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.struct_size = sizeof cfg;
  cfg.model_name = as_str(model_.name);
  cfg.options_json = as_str(model_.options_json);
  cfg.config_dir = as_str(dir);
  cfg.log = &backend::log_sink;
  cfg.log_user_data = this;
  moat_error err;
  init_error(err);
  moat_backend* out = nullptr;
  const moat_status st = api.create(&cfg, &out, &err);
  if (st != MOAT_OK || out == nullptr) {
    const std::string why = message_of(err);
    throw host_error(fmt::format("{}: model '{}' (plugin {}): create failed with {}: {}", model_.where,
                                 model_.name, plugin_->path().string(), status_name(st),
                                 why.empty() ? "no message" : why));
  }
  handle_ = out;
  moat_capabilities c;
  std::memset(&c, 0, sizeof c);
  c.struct_size = sizeof c;
  if (api.capabilities(handle_, &c) != MOAT_OK) {
    throw host_error(fmt::format("{}: model '{}': the plugin did not report its capabilities",
                                 model_.where, model_.name));
  }
  caps_.flags = c.flags;
  caps_.max_context = c.max_context;
  caps_.embedding_dim = c.embedding_dim;
  caps_.max_top_logprobs = c.max_top_logprobs;
  caps_.owned_by = c.owned_by.data && c.owned_by.size ? std::string(c.owned_by.data, c.owned_by.size) : "moat";
  if ((caps_.flags & MOAT_CAP_TOKENIZE) && (!api.tokenize || !api.detokenize)) {
    spdlog::warn("model '{}': plugin claims tokenize but lacks the functions; not offered", model_.name);
    caps_.flags &= ~static_cast<uint32_t>(MOAT_CAP_TOKENIZE);
  }
}

submit_outcome backend::submit(moat_request& request, std::shared_ptr<event_sink> sink,
                               const boost::asio::any_io_executor& strand) {
  submit_outcome out;
  if (handle_ == nullptr) {
    out.status = MOAT_ERR_UNAVAILABLE;
    out.message = fmt::format("model '{}' is not loaded", model_.name);
    return out;
  }
  // The host's own bound: a full model answers 429 at once instead of queueing without limit.
  if (in_flight_.fetch_add(1, std::memory_order_relaxed) >= static_cast<int64_t>(model_.max_queue)) {
    release_slot();
    out.status = MOAT_ERR_BUSY;
    out.message = fmt::format("model '{}' has {} requests in flight (max_queue); retry later",
                              model_.name, model_.max_queue);
    return out;
  }
  request.request_id = next_request_id();
  // The call and its control block are one block of this thread's cache (see block_cache.h).
  auto c = std::allocate_shared<call>(cached_allocator<call>(), *this, request.request_id,
                                      std::move(sink), strand, request.stream == 0);
  c->self_ = c;
  // Armed before submit: the terminal event may race back before submit() returns.
  c->start_deadline(request_timeout_);
  // The thread's error buffer, all zero between submits (re-zeroed after any that wrote into
  // it), so that a request does not clear 1 KiB for a message that is almost never written,
  // and a message a plugin left unterminated still ends in zeros, never in stale bytes.
  thread_local moat_error err{};
  err.struct_size = sizeof err;
  err.code = MOAT_OK;
  const moat_status st = plugin_->api().submit(handle_, &request, &call::on_event, c.get(), &err);
  if (st != MOAT_OK || err.message[0] != '\0') {
    if (st != MOAT_OK) out.message = message_of(err);  // with MOAT_OK it is not for the client
    init_error(err);
  }
  if (st != MOAT_OK) {
    c->self_.reset();  // no event follows a failed submit
    c->completions_.unwatch(*c);
    release_slot();
    out.status = st;
    if (out.message.empty()) out.message = fmt::format("the backend refused the request ({})", status_name(st));
    return out;
  }
  out.handle = std::move(c);
  return out;
}

void backend::cancel(uint64_t request_id) {
  if (handle_ != nullptr) plugin_->api().cancel(handle_, request_id);
}

moat_status backend::tokenize(const moat_tokenize_request& request, std::vector<int32_t>& tokens,
                              std::string& message) {
  const auto& api = plugin_->api();
  if (!caps_.has(MOAT_CAP_TOKENIZE) || api.tokenize == nullptr) {
    message = fmt::format("model '{}' does not offer tokenization", model_.name);
    return MOAT_ERR_UNSUPPORTED;
  }
  moat_error err;
  init_error(err);
  auto collect = [](void* user_data, const int32_t* data, size_t count) noexcept {
    try {
      auto* out = static_cast<std::vector<int32_t>*>(user_data);
      if (data && count) out->assign(data, data + count);
    } catch (...) {  // nothing crosses the ABI; an empty answer is reported below
    }
  };
  const moat_status st = api.tokenize(handle_, &request, collect, &tokens, &err);
  if (st != MOAT_OK) message = message_of(err);
  return st;
}

moat_status backend::detokenize(const std::vector<int32_t>& tokens, std::string& text, std::string& message) {
  const auto& api = plugin_->api();
  if (!caps_.has(MOAT_CAP_TOKENIZE) || api.detokenize == nullptr) {
    message = fmt::format("model '{}' does not offer tokenization", model_.name);
    return MOAT_ERR_UNSUPPORTED;
  }
  moat_error err;
  init_error(err);
  auto collect = [](void* user_data, moat_str s) noexcept {
    try {
      auto* out = static_cast<std::string*>(user_data);
      if (s.data && s.size) out->assign(s.data, s.size);
    } catch (...) {  // nothing crosses the ABI
    }
  };
  const moat_status st = api.detokenize(handle_, tokens.data(), tokens.size(), collect, &text, &err);
  if (st != MOAT_OK) message = message_of(err);
  return st;
}

metrics::model_live backend::live() const {
  metrics::model_live l;
  l.name = model_.name;
  l.queue_depth = in_flight();
  l.running = l.queue_depth;
  const auto& api = plugin_->api();
  if (handle_ != nullptr && api.stats != nullptr) {
    moat_stats s;
    std::memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    if (api.stats(handle_, &s) == MOAT_OK) {
      l.running = s.requests_running;
      l.waiting = s.requests_waiting;
      l.kv_cache_usage = s.kv_cache_usage;
    }
  }
  if (handle_ != nullptr && api.metrics != nullptr) l.backend_families = backend_metrics();
  return l;
}

std::shared_ptr<const metrics::backend_exposition> backend::backend_metrics() const {
  // Collects the pieces; stops keeping text past the size limit (the parser then drops it all
  // with a reason) so a runaway plugin cannot grow the scrape without bound.
  struct collector {
    std::string text;
    bool over = false;
  } got;
  auto on_text = [](void* user_data, moat_str piece) noexcept {
    auto* c = static_cast<collector*>(user_data);
    if (piece.data == nullptr || piece.size == 0 || c->over) return;
    if (c->text.size() + piece.size > metrics::backend_exposition_max_bytes) {
      c->over = true;
      return;
    }
    try {
      c->text.append(piece.data, piece.size);
    } catch (...) {  // nothing crosses the ABI; the text is dropped below
      c->over = true;
    }
  };
  try {
    const moat_status st = plugin_->api().metrics(handle_, on_text, &got);
    if (st != MOAT_OK) {
      warn_metrics_once(fmt::format("the plugin's metrics() failed with {}; its families are left out of /metrics",
                                    status_name(st)));
      return nullptr;
    }
    if (got.over) {
      warn_metrics_once(fmt::format("the plugin's metrics text exceeds {} bytes; left out of /metrics",
                                    metrics::backend_exposition_max_bytes));
      return nullptr;
    }
    auto parsed = std::make_shared<metrics::backend_exposition>(
        metrics::parse_backend_exposition(got.text, model_.name));
    if (!parsed->problems.empty()) {
      std::string all;
      for (const auto& p : parsed->problems) all.append(all.empty() ? "" : "; ").append(p);
      warn_metrics_once("lines of the plugin's metrics text were dropped: " + all);
    }
    return parsed;
  } catch (const std::exception& e) {
    warn_metrics_once(std::string("backend metrics left out: ") + e.what());
    return nullptr;
  }
}

void backend::warn_metrics_once(const std::string& why) const {
  // Once per backend: a scrape every few seconds must not flood the log with the same defect.
  if (metrics_warned_.exchange(true)) return;
  spdlog::warn("model '{}': {} (said once)", model_.name, why);
}

}  // namespace moat::host

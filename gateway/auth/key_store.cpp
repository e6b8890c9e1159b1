#include "auth/key_store.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <map>

namespace moat::auth {

struct key_state {
  std::mutex mu;  // guards everything below
  token_bucket requests;
  token_bucket tokens;
  std::uint32_t in_flight = 0;
};

struct key_record {
  api_key_entry entry;
  std::shared_ptr<key_state> state;
};

struct key_store::table {
  std::vector<key_ref> keys;
};

// ---- lease ----

request_lease& request_lease::operator=(request_lease&& other) noexcept {
  if (this != &other) {
    release();
    key_ = std::move(other.key_);
  }
  return *this;
}

request_lease::~request_lease() { release(); }

void request_lease::release() noexcept {
  if (!key_) return;
  std::lock_guard lock(key_->state->mu);
  if (key_->state->in_flight > 0) --key_->state->in_flight;
  key_.reset();
}

void request_lease::finish(std::uint64_t tokens_used, clock_type::time_point now) {
  if (!key_) return;
  {
    std::lock_guard lock(key_->state->mu);
    key_->state->tokens.charge(double(tokens_used), now);
  }
  release();
}

// ---- helpers ----

std::string format_reset(double seconds) {
  if (seconds <= 0) return "0s";
  if (seconds < 1) return std::to_string(static_cast<long>(std::ceil(seconds * 1000))) + "ms";
  const long s = static_cast<long>(std::ceil(seconds));
  if (s < 60) return std::to_string(s) + "s";
  return std::to_string(s / 60) + "m" + std::to_string(s % 60) + "s";
}

namespace {

decision refuse(verdict v, int status, std::string type, std::string code, std::string message) {
  decision d;
  d.result = v;
  d.status = status;
  d.error_type = std::move(type);
  d.error_code = std::move(code);
  d.message = std::move(message);
  return d;
}

std::string_view path_of(std::string_view target) {
  const auto q = target.find_first_of("?#");
  return q == std::string_view::npos ? target : target.substr(0, q);
}

// Adds the x-ratelimit-* headers for the limits this key has. Caller holds the key's mutex.
void add_limit_headers(decision& d, key_state& s, clock_type::time_point now) {
  if (!s.requests.unlimited()) {
    d.headers.emplace_back("x-ratelimit-limit-requests", std::to_string(s.requests.limit()));
    d.headers.emplace_back("x-ratelimit-remaining-requests", std::to_string(s.requests.remaining(now)));
    d.headers.emplace_back("x-ratelimit-reset-requests", format_reset(s.requests.seconds_until_full(now)));
  }
  if (!s.tokens.unlimited()) {
    d.headers.emplace_back("x-ratelimit-limit-tokens", std::to_string(s.tokens.limit()));
    d.headers.emplace_back("x-ratelimit-remaining-tokens", std::to_string(s.tokens.remaining(now)));
    d.headers.emplace_back("x-ratelimit-reset-tokens", format_reset(s.tokens.seconds_until_full(now)));
  }
}

decision too_many(const std::string& name, const std::string& what, double retry_s) {
  decision d = refuse(verdict::rate_limited, 429, what == "tokens" ? "tokens" : "requests",
                      "rate_limit_exceeded",
                      "Rate limit reached for key '" + name + "': " + what + ". Retry after " +
                          format_reset(retry_s) + ".");
  d.headers.emplace_back("Retry-After", std::to_string(std::max<long>(1, static_cast<long>(std::ceil(retry_s)))));
  return d;
}

}  // namespace

// ---- key_store ----

key_store::key_store(auth_config cfg, clock_type::time_point now) : cfg_(std::move(cfg)) {
  std::vector<api_key_entry> file_keys;
  if (!cfg_.keys_file.empty()) file_keys = load_keys_file(cfg_.keys_file);
  table_ = build(file_keys, now);
}

std::shared_ptr<const key_store::table> key_store::current() const {
  std::lock_guard lock(mu_);
  return table_;
}

std::shared_ptr<const key_store::table> key_store::build(const std::vector<api_key_entry>& file_keys,
                                                         clock_type::time_point now) const {
  // Counters carry over by digest: a reload neither resets nor loses anyone's budget.
  std::map<std::string, std::shared_ptr<key_state>> old;
  if (table_)
    for (const auto& k : table_->keys) old.emplace(to_hex(k->entry.sha256), k->state);
  auto t = std::make_shared<table>();
  std::map<std::string, std::string> seen_names, seen_digests;
  auto add = [&](const api_key_entry& e, const std::string& origin) {
    const std::string hex = to_hex(e.sha256);
    if (seen_names.count(e.name))
      throw auth_config_error(origin + ": key name \"" + e.name + "\" is also defined in " + seen_names[e.name]);
    if (seen_digests.count(hex))
      throw auth_config_error(origin + ": key \"" + e.name + "\" has the same sha256 as a key in " + seen_digests[hex]);
    seen_names[e.name] = origin;
    seen_digests[hex] = origin;
    auto rec = std::make_shared<key_record>();
    rec->entry = e;
    if (auto it = old.find(hex); it != old.end()) {
      rec->state = it->second;
      std::lock_guard lock(rec->state->mu);
      rec->state->requests.set_limit(e.rpm, now);
      rec->state->tokens.set_limit(e.tpm, now);
    } else {
      rec->state = std::make_shared<key_state>();
      rec->state->requests = token_bucket(e.rpm, now);
      rec->state->tokens = token_bucket(e.tpm, now);
    }
    t->keys.push_back(std::move(rec));
  };
  for (const auto& e : cfg_.api_keys) add(e, "the config's auth.api_keys");
  for (const auto& e : file_keys) add(e, cfg_.keys_file.string());
  return t;
}

std::string key_store::reload(clock_type::time_point now) {
  if (cfg_.keys_file.empty()) return "";
  try {
    const auto file_keys = load_keys_file(cfg_.keys_file);
    std::lock_guard lock(mu_);
    table_ = build(file_keys, now);
    spdlog::info("auth: reloaded {} keys ({} from {})", table_->keys.size(), file_keys.size(),
                 cfg_.keys_file.string());
    return "";
  } catch (const std::exception& e) {
    spdlog::warn("auth: keys file not reloaded, previous keys stay in force: {}", e.what());
    return e.what();
  }
}

std::size_t key_store::key_count() const { return current()->keys.size(); }

bool key_store::is_public_route(std::string_view target) const {
  const auto path = path_of(target);
  return path == "/health" || (cfg_.metrics_public && path == "/metrics");
}

decision key_store::authenticate(std::string_view target, std::string_view authorization, key_ref& who) const {
  who.reset();
  if (!enabled() || is_public_route(target)) return {};
  const std::string_view token = bearer_token(authorization);
  if (token.empty())
    return refuse(verdict::missing_key, 401, "invalid_request_error", "invalid_api_key",
                  "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.");
  const key_digest presented = digest_of(token);
  // Every stored digest is compared, in constant time each, so the time taken says nothing
  // about which key (if any) came close.
  key_ref found;
  // Held for the loop: `for (k : current()->keys)` would drop the table at the end of the range
  // expression, and a reload on another thread could free it mid-loop.
  const auto table = current();
  for (const auto& k : table->keys)
    if (digests_equal(k->entry.sha256, presented)) found = k;
  if (!found)
    return refuse(verdict::invalid_key, 401, "invalid_request_error", "invalid_api_key",
                  "Incorrect API key provided.");
  who = found;
  decision d;
  d.key_name = found->entry.name;
  return d;
}

bool key_store::allows_model(const key_ref& who, std::string_view model) {
  return !who || who->entry.allows(model);
}

decision key_store::admit(const key_ref& who, std::string_view model, clock_type::time_point now) {
  if (!who) return {};
  const api_key_entry& e = who->entry;
  if (!model.empty() && !e.allows(model)) {
    decision d = refuse(verdict::model_not_allowed, 403, "permission_error", "model_not_allowed",
                        "The API key '" + e.name + "' may not use the model '" + std::string(model) + "'.");
    d.key_name = e.name;
    return d;
  }
  key_state& s = *who->state;
  std::lock_guard lock(s.mu);
  decision d;
  if (e.max_concurrent && s.in_flight >= e.max_concurrent) {
    d = too_many(e.name, "concurrent requests (max_concurrent " + std::to_string(e.max_concurrent) + ")", 1.0);
  } else if (!s.tokens.unlimited() && s.tokens.remaining(now) < 1) {
    // tpm is charged after each request with its real usage; a key in debt waits until the
    // bucket is positive again.
    d = too_many(e.name, "tokens", s.tokens.seconds_until(1, now));
  } else if (!s.requests.try_take(1, now)) {
    d = too_many(e.name, "requests", s.requests.seconds_until(1, now));
  } else {
    ++s.in_flight;
    d.lease = request_lease(who);
  }
  d.key_name = e.name;
  add_limit_headers(d, s, now);
  return d;
}

decision key_store::check(std::string_view target, std::string_view authorization, std::string_view model,
                          clock_type::time_point now) {
  key_ref who;
  decision d = authenticate(target, authorization, who);
  if (!d.allowed()) return d;
  return admit(who, model, now);
}

}  // namespace moat::auth

// API keys on every route: who is calling (401), may they use this model (403), are they within
// their limits (429). The server calls it in two steps, so a bad key is refused before the body
// is read and the model check happens once the body names one:
//
//   moat::auth::key_store keys(moat::auth::parse_auth_config(cfg.auth, cfg.file));
//   moat::auth::key_ref who;
//   auto d = keys.authenticate(req.target(), req[http::field::authorization], who);
//   if (!d.allowed()) return error_response(d);            // 401 invalid_api_key
//   ... read and parse the body ...
//   auto a = keys.admit(who, parsed.model);                 // 403 / 429 with headers
//   if (!a.allowed()) return error_response(a);
//   ... run the request; add a.headers to the response ...
//   a.lease.finish(usage.total_tokens);                     // tpm charged with actual usage
//
// The table of keys is immutable and swapped whole on reload(); each key's counters survive a
// reload when its sha256 is unchanged. All methods are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/auth_config.h"
#include "auth/token_bucket.h"

namespace moat::auth {

struct key_record;  // one configured key and its live counters
using key_ref = std::shared_ptr<const key_record>;

// Holds one of the key's max_concurrent slots until destroyed; finish() charges the tokens a
// request actually used against tpm. Move-only; empty for unauthenticated routes.
class request_lease {
 public:
  request_lease() = default;
  explicit request_lease(key_ref key) : key_(std::move(key)) {}
  request_lease(request_lease&& other) noexcept : key_(std::move(other.key_)) {}
  request_lease& operator=(request_lease&& other) noexcept;
  ~request_lease();

  void finish(std::uint64_t tokens_used, clock_type::time_point now = clock_type::now());

 private:
  void release() noexcept;
  key_ref key_;
};

enum class verdict { allow, missing_key, invalid_key, model_not_allowed, rate_limited };

struct decision {
  verdict result = verdict::allow;
  int status = 200;           // 401, 403, 429 when refused
  std::string error_type;     // OpenAI error `type`
  std::string error_code;     // OpenAI error `code`: invalid_api_key, model_not_allowed, rate_limit_exceeded
  std::string message;        // safe to send: never holds the presented key
  // Retry-After and x-ratelimit-{limit,remaining,reset}-{requests,tokens}: add to the response
  // whether allowed or not.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string key_name;       // for audit lines and policies; empty when no key was needed
  request_lease lease;

  bool allowed() const { return result == verdict::allow; }
};

class key_store {
 public:
  // Loads keys_file when named. Throws auth_config_error.
  explicit key_store(auth_config cfg, clock_type::time_point now = clock_type::now());

  bool enabled() const { return cfg_.enabled(); }
  // /health always; /metrics when metrics_public. Every other target needs a key, including
  // ones no route serves (a 401 there tells a scanner nothing).
  bool is_public_route(std::string_view target) const;

  decision authenticate(std::string_view target, std::string_view authorization, key_ref& who) const;
  // `model` empty: a route without one (GET /v1/models); only the limits apply.
  decision admit(const key_ref& who, std::string_view model, clock_type::time_point now = clock_type::now());
  // Both steps at once.
  decision check(std::string_view target, std::string_view authorization, std::string_view model,
                 clock_type::time_point now = clock_type::now());

  // Re-reads keys_file (on SIGHUP). Returns "" on success, else the error; the previous keys
  // stay in force on error.
  std::string reload(clock_type::time_point now = clock_type::now());
  std::size_t key_count() const;
  // Names of the models a key may list (for GET /v1/models filtering); true when unrestricted.
  static bool allows_model(const key_ref& who, std::string_view model);

 private:
  struct table;
  std::shared_ptr<const table> current() const;
  std::shared_ptr<const table> build(const std::vector<api_key_entry>& file_keys, clock_type::time_point now) const;

  auth_config cfg_;
  mutable std::mutex mu_;  // guards table_ (the pointer, not the table)
  std::shared_ptr<const table> table_;
};

// "250ms", "12s", "6m0s": the duration format OpenAI uses in x-ratelimit-reset-* headers.
std::string format_reset(double seconds);

}  // namespace moat::auth

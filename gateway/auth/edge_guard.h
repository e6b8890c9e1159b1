// Edge hardening for the HTTP layer: request-smuggling and header-limit checks, a per-IP
// connection cap, and scrubbing of secrets from anything that may reach a log.
//
//   // after Beast parsed the header (and on the raw header bytes for obs-fold):
//   std::vector<moat::auth::header_view> hs;
//   for (const auto& f : parser.get()) hs.push_back({f.name_string(), f.value()});
//   if (auto v = moat::auth::check_request_headers(hs, raw_header_block, {.max_count = 100});
//       !v.ok) return error(v.status, v.reason);               // 400 / 431, then close
//
//   moat::auth::connection_limiter per_ip(64);                  // one per server
//   auto slot = per_ip.try_acquire(remote_ip);                  // keep it in the session
//   if (!slot) { socket.close(); return; }
//
//   spdlog::info("{}", moat::auth::scrub_secrets(line));        // or wrap the logger once:
//   moat::auth::install_log_scrubber(*spdlog::default_logger());
#pragma once

#include <spdlog/logger.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moat::auth {

struct header_view {
  std::string_view name;
  std::string_view value;
};

struct header_limits {
  std::size_t max_count = 100;          // fields in one request
  std::size_t max_bytes = 16 * 1024;    // names + values together
};

struct header_verdict {
  bool ok = true;
  int status = 200;     // 400 (malformed / smuggling) or 431 (too many / too large)
  std::string reason;   // safe for the error body: names the header, never echoes values
};

// Refuses, as RFC 9112 asks of a server that will not guess: Content-Length together with
// Transfer-Encoding; more than one Content-Length (even equal ones) or Transfer-Encoding; a
// Content-Length that is not a plain decimal; a Transfer-Encoding other than `chunked`; more
// than one Host; CR, LF or NUL inside a value; a name that is not an RFC token; obs-fold (a
// header line starting with space or tab) in `raw_header_block` when given.
header_verdict check_request_headers(const std::vector<header_view>& headers,
                                     std::string_view raw_header_block = {},
                                     const header_limits& limits = {});

// Whether a raw header block (request line through the blank line) holds an obs-fold line.
bool has_obs_fold(std::string_view raw_header_block);

// Counts open connections per client address; try_acquire fails at the cap. Slots are RAII and
// may outlive the limiter. Thread-safe.
class connection_limiter {
  struct state;

 public:
  class slot {
   public:
    slot(std::shared_ptr<state> s, std::string ip) : state_(std::move(s)), ip_(std::move(ip)) {}
    slot(slot&& o) noexcept = default;
    slot& operator=(slot&& o) noexcept;
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    ~slot();

   private:
    void release() noexcept;
    std::shared_ptr<state> state_;
    std::string ip_;
  };

  explicit connection_limiter(std::uint32_t max_per_ip);  // 0: unlimited
  std::optional<slot> try_acquire(const std::string& ip);
  std::uint32_t open_from(const std::string& ip) const;

 private:
  std::shared_ptr<state> state_;
};

// Replaces secrets with "[redacted]": the token after `Bearer `, values of Authorization,
// Proxy-Authorization, X-Api-Key and Cookie header lines, "api_key"/"authorization" JSON
// values, and anything shaped like an API key (`sk-` followed by 16+ key characters).
std::string scrub_secrets(std::string_view text);
// For logging one header: the value, or "[redacted]" for the sensitive names above.
std::string_view loggable_header_value(std::string_view name, std::string_view value);
// Wraps every sink of `logger` so each message is scrubbed before it is written.
void install_log_scrubber(spdlog::logger& logger);

}  // namespace moat::auth

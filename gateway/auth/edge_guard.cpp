#include "auth/edge_guard.h"
#include "util/ascii.h"

#include <mutex>
#include <unordered_map>

namespace moat::auth {

namespace {

bool is_tchar(unsigned char c) {
  return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

header_verdict bad(int status, std::string reason) { return {false, status, std::move(reason)}; }

}  // namespace

bool has_obs_fold(std::string_view raw) {
  // Any line after the request line that starts with SP/HT continues the previous field.
  for (std::size_t at = raw.find('\n'); at != std::string_view::npos; at = raw.find('\n', at + 1)) {
    if (at + 1 < raw.size() && (raw[at + 1] == ' ' || raw[at + 1] == '\t')) return true;
  }
  return false;
}

header_verdict check_request_headers(const std::vector<header_view>& headers, std::string_view raw,
                                     const header_limits& limits) {
  if (headers.size() > limits.max_count)
    return bad(431, "too many header fields (at most " + std::to_string(limits.max_count) + ")");
  if (!raw.empty() && has_obs_fold(raw)) return bad(400, "obsolete line folding in a header field");
  std::size_t bytes = 0, content_length = 0, transfer_encoding = 0, host = 0;
  for (const auto& h : headers) {
    bytes += h.name.size() + h.value.size();
    if (h.name.empty()) return bad(400, "empty header field name");
    for (unsigned char c : h.name)
      if (!is_tchar(c)) return bad(400, "invalid character in a header field name");
    for (unsigned char c : h.value)
      if (c == '\r' || c == '\n' || c == '\0')
        return bad(400, "invalid character in the value of " + std::string(h.name));
    if (util::iequals(h.name, "content-length")) {
      ++content_length;
      const auto v = trim(h.value);
      if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string_view::npos)
        return bad(400, "Content-Length is not a decimal number");
    } else if (util::iequals(h.name, "transfer-encoding")) {
      ++transfer_encoding;
      if (!util::iequals(trim(h.value), "chunked")) return bad(400, "only Transfer-Encoding: chunked is accepted");
    } else if (util::iequals(h.name, "host")) {
      ++host;
    }
  }
  if (bytes > limits.max_bytes)
    return bad(431, "header fields too large (at most " + std::to_string(limits.max_bytes) + " bytes)");
  if (content_length > 1) return bad(400, "more than one Content-Length");
  if (transfer_encoding > 1) return bad(400, "more than one Transfer-Encoding");
  if (content_length && transfer_encoding) return bad(400, "both Content-Length and Transfer-Encoding");
  if (host > 1) return bad(400, "more than one Host");
  return {};
}

// ---- connection_limiter ----

struct connection_limiter::state {
  std::uint32_t max_per_ip = 0;
  mutable std::mutex mu;  // guards open
  std::unordered_map<std::string, std::uint32_t> open;
};

connection_limiter::connection_limiter(std::uint32_t max_per_ip) : state_(std::make_shared<state>()) {
  state_->max_per_ip = max_per_ip;
}

std::optional<connection_limiter::slot> connection_limiter::try_acquire(const std::string& ip) {
  std::lock_guard lock(state_->mu);
  auto& n = state_->open[ip];
  if (state_->max_per_ip && n >= state_->max_per_ip) {
    if (n == 0) state_->open.erase(ip);
    return std::nullopt;
  }
  ++n;
  return slot(state_, ip);
}

std::uint32_t connection_limiter::open_from(const std::string& ip) const {
  std::lock_guard lock(state_->mu);
  const auto it = state_->open.find(ip);
  return it == state_->open.end() ? 0 : it->second;
}

connection_limiter::slot& connection_limiter::slot::operator=(slot&& o) noexcept {
  if (this != &o) {
    release();
    state_ = std::move(o.state_);
    ip_ = std::move(o.ip_);
  }
  return *this;
}

connection_limiter::slot::~slot() { release(); }

void connection_limiter::slot::release() noexcept {
  if (!state_) return;
  std::lock_guard lock(state_->mu);
  const auto it = state_->open.find(ip_);
  if (it != state_->open.end() && --it->second == 0) state_->open.erase(it);  // map stays small
  state_.reset();
}

}  // namespace moat::auth

// Secret scrubbing for logs (declared in edge_guard.h).
#include <spdlog/sinks/base_sink.h>

#include <mutex>

#include "auth/edge_guard.h"

namespace moat::auth {

namespace {

constexpr std::string_view redacted = "[redacted]";

bool key_char(unsigned char c) { return std::isalnum(c) || c == '-' || c == '_'; }

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Case-insensitive find.
std::size_t ifind(std::string_view hay, std::string_view needle, std::size_t from) {
  if (needle.size() > hay.size()) return std::string_view::npos;
  for (std::size_t i = from; i + needle.size() <= hay.size(); ++i) {
    std::size_t k = 0;
    while (k < needle.size() && lower(hay[i + k]) == needle[k]) ++k;
    if (k == needle.size()) return i;
  }
  return std::string_view::npos;
}

// Replaces, after each occurrence of `marker`, the value that follows up to a stop character.
void redact_after(std::string& s, std::string_view marker, std::string_view stops) {
  for (std::size_t at = ifind(s, marker, 0); at != std::string_view::npos;) {
    std::size_t begin = at + marker.size();
    while (begin < s.size() && (s[begin] == ' ' || s[begin] == '\t' || s[begin] == '"')) ++begin;
    std::size_t end = begin;
    while (end < s.size() && stops.find(s[end]) == std::string_view::npos) ++end;
    if (end > begin && std::string_view(s).substr(begin, end - begin) != redacted) {
      s.replace(begin, end - begin, redacted);
      end = begin + redacted.size();
    }
    at = ifind(s, marker, end);
  }
}

}  // namespace

std::string scrub_secrets(std::string_view text) {
  std::string s(text);
  // Header lines first (their whole value), then bearer tokens anywhere, then JSON fields.
  for (std::string_view h : {"authorization:", "proxy-authorization:", "x-api-key:", "cookie:"})
    redact_after(s, h, "\r\n");
  redact_after(s, "bearer ", " \t\r\n\",;");
  for (std::string_view j : {"\"api_key\":", "\"authorization\":", "\"password\":"}) redact_after(s, j, "\",}\r\n");
  // Key-shaped tokens: sk- and 16+ key characters, not preceded by a key character.
  for (std::size_t at = s.find("sk-"); at != std::string::npos; at = s.find("sk-", at + 1)) {
    if (at > 0 && key_char(static_cast<unsigned char>(s[at - 1]))) continue;
    std::size_t end = at + 3;
    while (end < s.size() && key_char(static_cast<unsigned char>(s[end]))) ++end;
    if (end - at - 3 >= 16) s.replace(at, end - at, redacted);
  }
  return s;
}

std::string_view loggable_header_value(std::string_view name, std::string_view value) {
  auto is = [&](std::string_view n) {
    if (n.size() != name.size()) return false;
    for (std::size_t i = 0; i < n.size(); ++i)
      if (lower(name[i]) != n[i]) return false;
    return true;
  };
  if (is("authorization") || is("proxy-authorization") || is("x-api-key") || is("cookie") || is("set-cookie"))
    return redacted;
  return value;
}

namespace {

// Forwards to the wrapped sink with the payload scrubbed. Formatting stays with the inner sink.
class scrubbing_sink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit scrubbing_sink(spdlog::sink_ptr inner) : inner_(std::move(inner)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string clean = scrub_secrets(std::string_view(msg.payload.data(), msg.payload.size()));
    spdlog::details::log_msg copy = msg;
    copy.payload = spdlog::string_view_t(clean.data(), clean.size());
    if (inner_->should_log(copy.level)) inner_->log(copy);
  }
  void flush_() override { inner_->flush(); }
  void set_pattern_(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter_(std::unique_ptr<spdlog::formatter> f) override { inner_->set_formatter(std::move(f)); }

 private:
  spdlog::sink_ptr inner_;
};

}  // namespace

void install_log_scrubber(spdlog::logger& logger) {
  for (auto& sink : logger.sinks()) {
    if (dynamic_cast<scrubbing_sink*>(sink.get())) continue;  // already wrapped
    sink = std::make_shared<scrubbing_sink>(sink);
  }
}

}  // namespace moat::auth

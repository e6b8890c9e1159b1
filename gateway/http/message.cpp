#include "http/message.h"

namespace moat::http {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

void client_signal::on_gone(std::function<void()> fn) {
  if (gone_) {
    if (fn) fn();
    return;
  }
  fn_ = std::move(fn);
}

void client_signal::fire() {
  if (gone_) return;
  gone_ = true;
  auto fn = std::move(fn_);
  fn_ = nullptr;
  if (fn) fn();
}

std::string_view request::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (iequals(h.name, name)) return h.value;
  }
  return {};
}

}  // namespace moat::http

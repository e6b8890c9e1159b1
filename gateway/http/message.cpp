#include "http/message.h"
#include "util/ascii.h"

namespace moat::http {

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
    if (util::iequals(h.name, name)) return h.value;
  }
  return {};
}

}  // namespace moat::http

#include "http/message.h"

#include <utility>

#include "util/ascii.h"

namespace moat::http {

void client_signal::on_gone(std::function<void()> fn) {
  if (gone_) {
    if (fn) fn();
    return;
  }
  target_.reset();
  target_fn_ = nullptr;
  fn_ = std::move(fn);
}

void client_signal::set(std::weak_ptr<void> target, void (*fn)(), trampoline call) {
  if (gone_) {
    if (auto t = target.lock(); t && fn != nullptr) call(fn, t.get());
    return;
  }
  fn_ = nullptr;
  target_ = std::move(target);
  target_fn_ = fn;
  call_ = call;
}

void client_signal::fire() {
  if (gone_) return;
  gone_ = true;
  auto fn = std::move(fn_);
  fn_ = nullptr;
  auto target = std::move(target_);
  const auto target_fn = std::exchange(target_fn_, nullptr);
  // Each ran at most once: both are cleared before either runs (a callback may register again).
  if (fn) fn();
  if (target_fn != nullptr) {
    if (auto t = target.lock()) call_(target_fn, t.get());
  }
}

std::string_view request::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (util::iequals(h.name, name)) return h.value;
  }
  return {};
}

}  // namespace moat::http

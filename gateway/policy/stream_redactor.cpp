#include "policy/stream_redactor.h"

#include <algorithm>

namespace moat::policy {

namespace {
// Bytes of released text kept before the first unreleased byte, so that \b and (?m)^ see the
// character before it exactly as they would in the whole text.
constexpr size_t context_bytes = 8;
}  // namespace

std::string valid_utf8(std::string_view text, std::string* pending) {
  static constexpr std::string_view replacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    char32_t cp;
    const size_t len = decode_utf8(text, i, &cp);
    if (len == 0 && pending) {
      pending->assign(text.substr(i));
      break;
    }
    if (len == 0 || cp == invalid_cp) {
      out.append(replacement);
      ++i;
      continue;
    }
    out.append(text, i, len);
    i += len;
  }
  return out;
}

std::string default_render(const rule& r, std::string_view matched) {
  return r.action == rule_action::audit ? std::string(matched) : r.replace;
}

std::string redact_text(const rule_scanner& scanner, std::string_view raw, const hit_renderer& render) {
  const std::string valid = valid_utf8(raw);
  const std::string_view text = valid;
  const auto hits = scanner.find_all(text);
  if (hits.empty()) return valid;
  const auto& rules = scanner.rules();
  return apply_hits(text, hits, [&](const rule_hit& h) {
    return render(rules[h.rule], text.substr(h.begin, h.end - h.begin));
  });
}

stream_redactor::stream_redactor(std::shared_ptr<const rule_scanner> scanner, hit_renderer render)
    : scanner_(std::move(scanner)), render_(std::move(render)), run_(&scanner_->automaton()) {}

std::string stream_redactor::release(size_t limit) {
  // Commit the hits that start before `limit`, then release through max(limit, last hit end).
  hits_.clear();
  size_t after = pend_;
  // The NFA records every start that reached a match; without one below `limit` there is
  // nothing for RE2 to find, and the text goes out as it is.
  const bool final_scan = limit > text_.size();
  if (final_scan || run_.matched_in(base_ + pend_, base_ + limit)) {
    const auto active = scanner_->active_rules(std::string_view(text_).substr(pend_ > context_bytes ? pend_ - context_bytes : 0));
    if (!active.empty()) after = scanner_->scan(text_, pend_, limit, active, hits_);
  }
  const size_t r = std::max(after, std::min(limit, text_.size()));
  const auto& rules = scanner_->rules();
  std::string out;
  size_t at = pend_;
  for (const auto& h : hits_) {
    out.append(text_, at, h.begin - at);
    out.append(render_(rules[h.rule], std::string_view(text_).substr(h.begin, h.end - h.begin)));
    at = h.end;
  }
  out.append(text_, at, r - at);
  const size_t hold = local_hold();
  pend_ = r;
  run_.forget_before(base_ + r);
  if (r > hold) {
    // A committed hit ran past the first open start: the threads that started inside it belong
    // to text the whole-text scan skips too. Re-run the NFA over what is left.
    run_.restart(base_ + r, std::string_view(text_).substr(0, r));
    run_.feed(std::string_view(text_).substr(r));
  }
  if (pend_ > context_bytes * 8) {
    const size_t drop = pend_ - context_bytes;
    text_.erase(0, drop);
    base_ += drop;
    pend_ -= drop;
  }
  return out;
}

size_t stream_redactor::local_hold() const {
  const size_t g = run_.hold_from();
  return g > base_ ? g - base_ : 0;
}

std::string stream_redactor::push(std::string_view raw) {
  std::string joined = std::move(utf8_pending_);
  utf8_pending_.clear();
  joined.append(raw);
  const std::string delta = valid_utf8(joined, &utf8_pending_);
  text_.append(delta);
  run_.feed(delta);
  const size_t hold = local_hold();
  if (hold <= pend_) return {};
  return release(hold);
}

std::string stream_redactor::finish() {
  if (!utf8_pending_.empty()) {
    // A sequence still cut at the end of the answer is invalid: its bytes become U+FFFD.
    const std::string tail = valid_utf8(utf8_pending_);
    utf8_pending_.clear();
    text_.append(tail);
    run_.feed(tail);
  }
  std::string out = release(text_.size() + 1);
  text_.clear();
  pend_ = 0;
  return out;
}

}  // namespace moat::policy

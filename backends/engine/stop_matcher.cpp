#include "engine/stop_matcher.h"

#include <algorithm>

namespace moat::engine {

stop_matcher::stop_matcher(std::vector<std::string> stops) {
  for (auto& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));  // an empty stop would match everywhere
}

stop_matcher::result stop_matcher::push(std::string_view text) {
  result r;
  if (stopped_) return r;
  pending_.append(text);
  if (stops_.empty()) {
    r.text.swap(pending_);
    return r;
  }

  // The earliest complete match wins: it is where the visible answer ends.
  size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, pending_.find(s));
  if (first != std::string::npos) {
    r.text = pending_.substr(0, first);
    r.stopped = stopped_ = true;
    pending_.clear();
    return r;
  }

  // Hold back the longest suffix that could still grow into a stop string.
  size_t hold = 0;
  for (const auto& s : stops_) {
    const size_t max_len = std::min(s.size() - 1, pending_.size());
    for (size_t len = max_len; len > hold; --len) {
      if (std::string_view(pending_).substr(pending_.size() - len) ==
          std::string_view(s).substr(0, len)) {
        hold = len;
        break;
      }
    }
  }
  r.text = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return r;
}

std::string stop_matcher::flush() {
  std::string out;
  if (!stopped_) out.swap(pending_);
  return out;
}

}  // namespace moat::engine

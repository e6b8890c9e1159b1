#include "policy/pseudonyms.h"

namespace moat::policy {

const std::string& pseudonym_map::placeholder(const std::string& label, std::string_view value) {
  std::string key = label;
  key.push_back('\0');
  key.append(value);
  auto it = by_value_.find(key);
  if (it != by_value_.end()) return it->second;
  const int n = ++counters_[label];
  std::string ph = "<" + label + "_" + std::to_string(n) + ">";
  originals_.emplace(ph, std::string(value));
  return by_value_.emplace(std::move(key), std::move(ph)).first->second;
}

const std::string* pseudonym_map::original(std::string_view placeholder) const {
  auto it = originals_.find(placeholder);
  return it == originals_.end() ? nullptr : &it->second;
}

bool pseudonym_map::could_complete(std::string_view s) const {
  // The first placeholder not less than s is the only candidate that can start with it.
  auto it = originals_.lower_bound(s);
  return it != originals_.end() && it->first.size() > s.size() && std::string_view(it->first).substr(0, s.size()) == s;
}

std::string pseudonym_map::restore(std::string_view text) const {
  if (originals_.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t lt = text.find('<', i);
    if (lt == std::string_view::npos) break;
    const size_t gt = text.find('>', lt);
    if (gt == std::string_view::npos) break;
    out.append(text.substr(i, lt - i));
    if (const std::string* orig = original(text.substr(lt, gt - lt + 1))) {
      out.append(*orig);
      i = gt + 1;
    } else {
      out.push_back('<');
      i = lt + 1;
    }
  }
  out.append(text.substr(i));
  return out;
}

std::string pseudonym_restorer::push(std::string_view delta) {
  pending_.append(delta);
  if (!map_ || map_->empty()) {
    std::string out;
    out.swap(pending_);
    return out;
  }
  // Placeholders contain no '<' after the first byte, so only the last '<' can open one that
  // is still incomplete.
  size_t keep = pending_.size();
  const size_t lt = pending_.rfind('<');
  if (lt != std::string::npos && pending_.find('>', lt) == std::string::npos &&
      map_->could_complete(std::string_view(pending_).substr(lt))) {
    keep = lt;
  }
  std::string out = map_->restore(std::string_view(pending_).substr(0, keep));
  pending_.erase(0, keep);
  return out;
}

std::string pseudonym_restorer::finish() {
  std::string out = map_ ? map_->restore(pending_) : pending_;
  pending_.clear();
  return out;
}

}  // namespace moat::policy

// Reversible pseudonymization: the model sees "<EMAIL_1>", the client gets the original back.
//
//   moat::policy::pseudonym_map map;
//   map.placeholder("EMAIL", "bob@example.com");     // "<EMAIL_1>"
//   map.placeholder("EMAIL", "bob@example.com");     // "<EMAIL_1>" again (same value, same name)
//   moat::policy::pseudonym_restorer r(map);
//   r.push("Write to <EMA") + r.push("IL_1> today") + r.finish();  // "Write to bob@example.com today"
//
// One map per request; it lives as long as the request (the response filter holds a shared_ptr).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace moat::policy {

class pseudonym_map {
 public:
  // The placeholder for `value` under `label`, creating "<LABEL_n>" on first sight.
  const std::string& placeholder(const std::string& label, std::string_view value);
  // The original for an exact placeholder, or nullptr.
  const std::string* original(std::string_view placeholder) const;
  bool empty() const { return originals_.empty(); }
  size_t size() const { return originals_.size(); }
  // True when `s` is a proper prefix of some placeholder (so more text could complete it).
  bool could_complete(std::string_view s) const;
  // Replaces every placeholder in a whole text.
  std::string restore(std::string_view text) const;

 private:
  std::map<std::string, std::string, std::less<>> originals_;   // placeholder -> value (ordered: prefix search)
  std::unordered_map<std::string, std::string> by_value_;       // label + '\0' + value -> placeholder
  std::unordered_map<std::string, int> counters_;
};

// Restores placeholders in a stream, holding back only a tail that could still be one.
class pseudonym_restorer {
 public:
  explicit pseudonym_restorer(std::shared_ptr<const pseudonym_map> map) : map_(std::move(map)) {}
  std::string push(std::string_view delta);
  std::string finish();

 private:
  std::shared_ptr<const pseudonym_map> map_;
  std::string pending_;
};

}  // namespace moat::policy

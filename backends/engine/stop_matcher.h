// moat/engine/stop_matcher.h — finds stop strings in streamed text, across token boundaries.
//
//   moat::engine::stop_matcher m({"\n\n", "The end"});
//   auto r = m.push("Once upon a time.\n");   // r.text == "Once upon a time." ("\n" held back)
//   r = m.push("\nNext");                     // r.stopped, r.text == "" (the stop is never emitted)
//   std::string rest = m.flush();             // on any other finish: what was held back
//
// Text is released as soon as it can no longer be the start of a stop string: what stays held
// back is the longest suffix of the unreleased text that is a prefix of some stop string. Both
// the input (complete UTF-8 from the streaming detokenizer) and the stop strings are valid UTF-8,
// so every cut falls on a character boundary.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moat::engine {

class stop_matcher {
 public:
  explicit stop_matcher(std::vector<std::string> stops);

  struct result {
    std::string text;      // safe to emit now
    bool stopped = false;  // a stop string was found; text ends right before it
  };

  // Appends newly decoded text. After a stop, further pushes return nothing.
  result push(std::string_view text);

  // Releases what was held back (the sequence ended for another reason).
  std::string flush();

  bool stopped() const { return stopped_; }
  size_t held_bytes() const { return pending_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string pending_;  // decoded but not yet released
  bool stopped_ = false;
};

}  // namespace moat::engine

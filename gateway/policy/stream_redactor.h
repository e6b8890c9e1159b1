// Redaction of a streamed answer: each push() releases at once every byte that no future chunk
// can change, and holds back only the tail that could still become (part of) a match.
//
//   moat::policy::stream_redactor r(scanner, render);
//   std::string out = r.push("card 4111 1111");    // "card " (the digits could be a card)
//   out += r.push(" 1111 1111 ok");                // "[CARD] ok" minus what is still open
//   out += r.finish();                             // the rest; equals the whole-text redaction
//
// Text is matched as valid UTF-8: each invalid byte becomes U+FFFD first (what the client gets
// anyway, since the JSON writer does the same), so RE2 and the NFA never disagree about where a
// character starts after a stray byte. A sequence cut at the end of a chunk waits for the next.
//
// Exactness: the scanner's semantics depend only on the text (rule_scanner.h), the NFA says which
// starts are still open, and a hit is committed only when it starts before every open start, so
// the output equals whole-text redaction for every chunking. A property test checks this with
// random chunkings and the fuzz target with arbitrary input.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "policy/pattern_automaton.h"
#include "policy/rule_scanner.h"

namespace moat::policy {

// Returns the text that replaces a hit (the matched text itself to leave it untouched).
using hit_renderer = std::function<std::string(const rule& r, std::string_view matched)>;

// The default: redact, block and pseudonymize put rule.replace, audit leaves the text.
std::string default_render(const rule& r, std::string_view matched);

class stream_redactor {
 public:
  stream_redactor(std::shared_ptr<const rule_scanner> scanner, hit_renderer render = default_render);

  std::string push(std::string_view delta);
  std::string finish();

  // Bytes currently held back (for tests and metrics).
  size_t held() const { return text_.size() - pend_; }

 private:
  std::string release(size_t limit);
  size_t local_hold() const;  // hold_from() as an index into text_

  std::shared_ptr<const rule_scanner> scanner_;
  hit_renderer render_;
  automaton_run run_;
  std::string text_;   // a few bytes of released context, then everything not yet released
  size_t base_ = 0;    // global offset of text_[0]
  size_t pend_ = 0;    // index in text_ of the first unreleased byte
  std::vector<rule_hit> hits_;
  std::string utf8_pending_;  // the start of a UTF-8 sequence cut at the end of the last chunk
};

// `text` with every byte that is not part of a valid UTF-8 sequence replaced by U+FFFD. With
// `pending`, a sequence incomplete at the end is left out and stored there instead (streaming).
std::string valid_utf8(std::string_view text, std::string* pending = nullptr);

// The whole-text form of the same redaction.
std::string redact_text(const rule_scanner& scanner, std::string_view text,
                        const hit_renderer& render = default_render);

}  // namespace moat::policy

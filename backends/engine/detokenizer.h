// detokenizer.h — streaming ids -> text that never splits a UTF-8 character.
//
//   moat::engine::detokenizer detok(*tok);              // one per generated sequence
//   for (token_id id : generated) {
//     std::string delta = detok.push(id);                // "" while a character is incomplete
//     if (!delta.empty()) send(delta);
//   }
//   send(detok.finish());                                // leftover bytes as U+FFFD, usually ""
//
// The concatenation of every push() and finish() equals tok.decode(generated) (with the same
// skip_special and strip rules). Byte-fallback tokens (<0xE2><0x96><0x81>) are joined into one
// character; a byte that can never start or continue a character is replaced by U+FFFD at once
// so one bad token cannot hold the stream back.
//
// Leading space: SentencePiece-style tokenizers store "▁Once"; the reference decoders drop that one
// leading space at the start of the decoded text. options.strip_leading_space (default: what the
// tokenizer does) applies the same rule to the first emitted bytes of this stream. Set it false when
// the stream continues earlier text (completions that echo the prompt) and the space is wanted.
//
// Ownership: holds a reference to the tokenizer, which must outlive it. Not thread-safe; one
// instance per sequence, used by the thread that runs that sequence.
#pragma once

#include <optional>
#include <string>

#include "engine/tokenizer.h"

namespace moat::engine {

struct detokenizer_options {
  bool skip_special = true;                  // control tokens (EOS, <|eot_id|>) add no text
  std::optional<bool> strip_leading_space;   // unset: tokenizer.strips_leading_space()
};

class detokenizer {
 public:
  explicit detokenizer(const tokenizer& tok, detokenizer_options options = {});

  // Appends one token; returns the text that became complete (possibly empty). Never throws.
  std::string push(token_id id);
  // Returns what is still held back (an incomplete character at the end, as U+FFFD) and resets.
  std::string finish();
  // Bytes held back right now (0..3): an unfinished UTF-8 sequence.
  size_t pending_bytes() const { return pending_.size(); }

 private:
  std::string drain_complete();

  const tokenizer& tok_;
  bool skip_special_;
  bool strip_leading_space_;
  bool started_ = false;  // some byte of text has been seen (the leading-space rule is spent)
  std::string pending_;
};

// Splits `bytes` at the end of the longest prefix that holds only complete characters (invalid bytes
// count as complete: they are replaced). Returns that prefix length. Used by the detokenizer and by
// stop-string handling that must not cut a character.
size_t utf8_complete_prefix(std::string_view bytes);

// Returns `bytes` with every invalid UTF-8 sequence replaced by U+FFFD (as Python's
// bytes.decode("utf-8", "replace") does, one U+FFFD per maximal invalid subpart).
std::string utf8_sanitize(std::string_view bytes);

}  // namespace moat::engine

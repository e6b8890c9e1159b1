// text_unicode.h — the small Unicode toolkit the tokenizers need: UTF-8 decoding that never fails,
// the character classes of the GPT-2 / Llama-3 pre-tokenizer patterns, and GPT-2's byte-to-unicode map.
//
//   size_t len = moat::engine::utf8_char_length(text, i);    // 1..4, 1 for an invalid byte
//   char32_t cp = moat::engine::utf8_decode_at(text, i);     // U+FFFD for an invalid sequence
//   if (moat::engine::is_unicode_letter(cp)) ...             // \p{L}
//   std::string mapped = moat::engine::bytes_to_gpt2_unicode("hi there");   // "hiĠthere"
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace moat::engine {

// Length of the UTF-8 sequence starting at text[i]: 1..4 for a valid sequence, 1 for a byte that
// does not start one (or a truncated / overlong / surrogate sequence).
size_t utf8_char_length(std::string_view text, size_t i);
// The code point at text[i] (valid per utf8_char_length), or U+FFFD when that byte is invalid.
char32_t utf8_decode_at(std::string_view text, size_t i);
void utf8_append(std::string& out, char32_t cp);

bool is_unicode_letter(char32_t cp);      // \p{L}
bool is_unicode_number(char32_t cp);      // \p{N}
bool is_unicode_whitespace(char32_t cp);  // \s as Oniguruma/PCRE see it (White_Space property)

// GPT-2's reversible map from bytes to printable code points ("Ġ" for space, "Ċ" for newline).
std::string bytes_to_gpt2_unicode(std::string_view bytes);
// The inverse, for one piece; nullopt when a code point is outside the map.
std::optional<std::string> gpt2_unicode_to_bytes(std::string_view piece);

}  // namespace moat::engine

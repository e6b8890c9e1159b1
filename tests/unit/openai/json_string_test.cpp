// JSON string escaping and the repair of invalid UTF-8.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdint>
#include <vector>

#include "openai/json_write.h"
#include "openai/protocol.h"

namespace moat::openai {
namespace {

std::string escaped(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

// The escaped string must read back (with a real JSON parser) as `expected`.
void expect_round_trip(std::string_view text, std::string_view expected) {
  const std::string json = escaped(text);
  simdjson::dom::parser parser;
  std::string_view back;
  ASSERT_EQ(parser.parse(json).get_string().get(back), simdjson::SUCCESS) << json;
  EXPECT_EQ(back, expected) << json;
}

TEST(JsonString, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(escaped("plain"), "\"plain\"");
  EXPECT_EQ(escaped("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(escaped("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
  EXPECT_EQ(escaped(std::string_view("\x00\x01\x1f", 3)), "\"\\u0000\\u0001\\u001f\"");
  EXPECT_EQ(escaped("/<>'\x7f"), "\"/<>'\x7f\"");
  EXPECT_EQ(escaped(""), "\"\"");
}

TEST(JsonString, ValidUtf8PassesThrough) {
  const std::string text = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF";
  EXPECT_EQ(escaped(text), "\"" + text + "\"");
  expect_round_trip(text, text);
}

TEST(JsonString, InvalidUtf8IsReplaced) {
  const std::string fffd = "\xEF\xBF\xBD";
  expect_round_trip("a\xFF" "b", "a" + fffd + "b");                       // never valid
  expect_round_trip("\x80", fffd);                                         // stray continuation
  expect_round_trip("\xC3", fffd);                                         // truncated at the end
  expect_round_trip("\xC3" "A", fffd + "A");                               // truncated mid-text
  expect_round_trip("\xC0\xAF", fffd + fffd);                              // overlong '/'
  expect_round_trip("\xE0\x80\xAF", fffd + fffd + fffd);                   // overlong, 3 bytes
  expect_round_trip("\xED\xA0\x80", fffd + fffd + fffd);                   // UTF-16 surrogate
  expect_round_trip("\xF4\x90\x80\x80", fffd + fffd + fffd + fffd);        // past U+10FFFF
  expect_round_trip("\xF0\x9F\x98", fffd + fffd + fffd);                   // truncated emoji
  expect_round_trip("ok\xF0\x9F\x98\x80\xFE", "ok\xF0\x9F\x98\x80" + fffd);
}

TEST(JsonString, LongMixedTextRoundTrips) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "w\xC3\xA9\"\\\n\x01 ";
  expect_round_trip(text, text);
}

// Plain text is scanned 16 and 8 bytes at a time: every byte that needs escaping or checking must
// still be found at every offset inside and across those blocks, with plain text of any length
// around it.
TEST(JsonString, EverySpecialByteIsFoundAtEveryOffset) {
  const std::string fffd = "\xEF\xBF\xBD";
  struct special {
    std::string raw;
    std::string escaped;  // as the writer spells it
  };
  const special specials[] = {{"\"", "\\\""},      {"\\", "\\\\"},
                              {"\n", "\\n"},       {std::string(1, '\0'), "\\u0000"},
                              {"\x1f", "\\u001f"}, {"\xC3\xA9", "\xC3\xA9"},
                              {"\xFF", fffd}};
  for (const auto& sp : specials) {
    for (size_t before = 0; before < 40; ++before) {
      for (size_t after : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{13}, size_t{16},
                           size_t{17}, size_t{31}}) {
        const std::string text = std::string(before, 'a') + sp.raw + std::string(after, 'z');
        // Built by appending: GCC 12 at -O3 misreads a chain of string operator+ (-Wrestrict).
        std::string want = "\"";
        want.append(before, 'a').append(sp.escaped).append(after, 'z').push_back('"');
        EXPECT_EQ(escaped(text), want) << "before " << before << ", after " << after;
      }
    }
  }
  // Bytes next to the special ones in value: ' ' (0x20), '!' and '#' beside '"', ']' beside '\\',
  // DEL (0x7f): all plain.
  expect_round_trip(" !#]\x7f ~ !#]\x7f ~", " !#]\x7f ~ !#]\x7f ~");
  // The same across the 16-byte blocks of the long-text scan.
  const std::string near = " !#]\x7f ~[\x7f!#] ~ !#]\x7f ~[\x7f!#] ~ !#]\x7f ~[\x7f!#]";
  expect_round_trip(near, near);
}

// Text of up to 8 bytes is tested as one word padded with spaces, 9 to 16 bytes as two
// overlapping words, and a longer text's last bytes as the last 8 (overlapping): plain text of
// every length comes out as it went in, and a special byte at the end of any is still found.
TEST(JsonString, ShortTextsAndTailsOfEveryLength) {
  for (size_t length = 0; length <= 24; ++length) {
    std::string text;
    for (size_t i = 0; i < length; ++i) text += static_cast<char>('a' + i % 26);
    std::string want = "\"";
    want += text;
    want += '"';
    EXPECT_EQ(escaped(text), want) << length;
    if (length == 0) continue;
    text.back() = '\n';
    want.resize(want.size() - 2);
    want += "\\n\"";
    EXPECT_EQ(escaped(text), want) << length;
    text.back() = '\xC3';  // a truncated UTF-8 sequence
    want.resize(want.size() - 3);
    want += "\xEF\xBF\xBD\"";
    EXPECT_EQ(escaped(text), want) << length;
  }
}

// json_out buffers pieces and hands them to the string in one append when its buffer fills (or
// at done()); a piece longer than half the buffer goes straight through. Pieces of every size
// around those limits, numbers across the buffer's end and text appended to a string that
// already holds some must come out exactly as std::string appends would write them.
TEST(JsonOut, PiecesAcrossTheBufferEqualPlainAppends) {
  for (size_t piece : {size_t{1}, size_t{7}, size_t{100}, size_t{511}, size_t{512}, size_t{513},
                       size_t{1023}, size_t{1024}, size_t{1025}, size_t{5000}}) {
    std::string out = "prefix";
    std::string want = "prefix";
    detail::json_out w(out, piece % 2 == 0 ? 0 : 3 * piece);
    for (int round = 0; round < 7; ++round) {
      const std::string text(piece, static_cast<char>('a' + round));
      w += text;
      want += text;
      detail::append_uint(w, 18446744073709551615ull);
      want += "18446744073709551615";
      w += ',';
      want += ',';
      detail::append_int(w, -9223372036854775807ll - 1);
      want += "-9223372036854775808";
      detail::append_json_string(w, text + std::string("\"\n"));
      want += '"';
      want += text;
      want += "\\\"\\n\"";
      detail::append_logprob(w, -0.5);
      want += "-0.5";
    }
    w.done();
    EXPECT_EQ(out, want) << "piece " << piece;
    w += std::string_view();  // empty, with a null data(): nothing, and no memcpy from null
    detail::append_json_string(w, std::string_view());
    want += "\"\"";
    w += "!";  // usable after done(): the next done() appends again
    w.done();
    EXPECT_EQ(out, want + "!") << "piece " << piece;
  }
}

// Unsigned numbers (one and two digits take a short path) read as std::to_string writes them.
TEST(JsonOut, UnsignedNumbersOfEveryWidth) {
  std::vector<uint64_t> values;
  for (uint64_t v = 0; v <= 1000; ++v) values.push_back(v);
  for (uint64_t p = 10000; p != 0 && p <= UINT64_MAX / 10; p *= 10) {
    values.push_back(p - 1);
    values.push_back(p);
  }
  values.push_back(UINT64_MAX);
  std::string out;
  std::string want;
  detail::json_out w(out);
  for (uint64_t v : values) {
    detail::append_uint(w, v);
    w += ',';
    want += std::to_string(v) + ',';
  }
  w.done();
  EXPECT_EQ(out, want);
}

}  // namespace
}  // namespace moat::openai

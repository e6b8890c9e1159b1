// Internal: typed access to a simdjson DOM with OpenAI's validation messages. Parsers call these
// helpers, which throw request_error on the first fault; the public parse_* functions catch it
// at the edge and return it as an api_error value, so no exception leaves this module.
//
//   const param_path root;
//   dom::object body = parse_body(parser, text);
//   if (auto t = optional_field(body, "temperature"))
//     temperature = as_number(*t, root.field("temperature"), 0.0, 2.0);
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "openai/protocol.h"

namespace moat::openai::detail {

namespace dom = simdjson::dom;

// A parameter's name as OpenAI spells it ("messages[0].content[1].text"). Paths live on the
// stack and link to their parent; the string is only built when an error is reported.
struct param_path {
  const param_path* parent = nullptr;
  std::string_view key;  // field name; empty for the root or for an array element
  size_t index = 0;
  bool is_index = false;

  param_path field(std::string_view name) const { return {this, name, 0, false}; }
  param_path at(size_t i) const { return {this, {}, i, true}; }
  std::string str() const;
};

struct request_error {
  api_error error;
};

[[noreturn]] void fail(std::string message, std::optional<std::string> param = {},
                       std::optional<std::string> code = {});
[[noreturn]] void fail_missing(const param_path& path);
[[noreturn]] void fail_type(const param_path& path, dom::element value, std::string_view expected);
[[noreturn]] void fail_unsupported_value(const param_path& path, std::string_view value,
                                         std::string_view supported);

// The body's root object. The parser is the caller's (one per thread), so the DOM stays valid
// until that parser parses again.
dom::object parse_body(dom::parser& parser, std::string_view body);

// An object's fields, listed once. A request names a handful of the ~30 fields a parser asks
// for, so a lookup compares against the few keys present (length first) instead of walking the
// DOM per name; this halved the parse of a chat request. Duplicate keys: the first wins, as with
// simdjson's at_key. Implicit from dom::object, so a caller holding one can pass it (and pays
// the listing per call: build one where an object is asked more than once or twice).
class object_fields {
 public:
  object_fields(dom::object object);  // NOLINT(google-explicit-constructor): see above
  // Always inlined: GCC otherwise keeps one out-of-line copy, where the key is no longer a
  // constant and its first bytes are read with a memcpy call.
  [[gnu::always_inline]] std::optional<dom::element> find(std::string_view key) const {
    // Inline, so a literal key's first bytes and its signature bit fold into constants. Most
    // asked fields are absent (a request names a few, the parser asks for ~30): one bit test
    // answers those; otherwise a lookup compares 8 bytes and a length per present key. An
    // object with more keys than the list holds has every signature bit set, so its lookups
    // all pass the test and go to the DOM.
    const uint64_t head = head_of(key);
    if ((signature_ & signature_bit(head, key.size())) == 0) return std::nullopt;
    if (overflow_) return find_in_dom(key);
    for (size_t i = 0; i < count_; ++i) {
      const entry& e = entries_[i].e;
      if (e.head == head && e.key.size() == key.size() &&
          (key.size() <= 8 || e.key.substr(8) == key.substr(8))) {
        return e.value;
      }
    }
    return std::nullopt;
  }

 private:
  struct entry {
    uint64_t head;  // the key's first 8 bytes, zero-padded
    std::string_view key;
    dom::element value;
  };
  // One of 64 bits from a key's first 8 bytes and length; the present keys' bits are OR-ed
  // into signature_, so a clear bit means "absent" for certain.
  [[gnu::always_inline]] static uint64_t signature_bit(uint64_t head, size_t size) {
    return uint64_t{1} << (((head ^ size) * 0x9E3779B97F4A7C15ull) >> 58);
  }
  // The first 8 bytes, zero-padded. A literal key folds to a constant; a present key (any
  // length) is read with at most two loads and no memcpy call: below 8 bytes as two
  // overlapping 4-byte halves, or byte by byte below 4 (the same bytes, so the same value).
  [[gnu::always_inline]] static uint64_t head_of(std::string_view key) {
    const char* s = key.data();
    const size_t size = key.size();
    uint64_t head = 0;
    if (size >= 8) {
      std::memcpy(&head, s, 8);
    } else if (size >= 4) {
      uint32_t a;
      uint32_t b;
      std::memcpy(&a, s, 4);
      std::memcpy(&b, s + size - 4, 4);
      head = a | (uint64_t{b} << (8 * (size - 4)));
    } else if (size != 0) {
      head = uint64_t{static_cast<unsigned char>(s[0])} |
             uint64_t{static_cast<unsigned char>(s[size / 2])} << (8 * (size / 2)) |
             uint64_t{static_cast<unsigned char>(s[size - 1])} << (8 * (size - 1));
    }
    return head;
  }
  std::optional<dom::element> find_in_dom(std::string_view key) const;

  static constexpr size_t inline_count = 24;  // more keys than this: at_key on the DOM
  // Left uninitialized until a key is listed there (count_ of them are): zeroing all 24
  // entries (a dom::element and a view each) cost ~120 instructions per object, as much as
  // listing three keys.
  union slot {
    slot() {}  // NOLINT(modernize-use-equals-default): a defaulted one would be deleted
    entry e;
  };
  dom::object object_;
  slot entries_[inline_count];
  size_t count_ = 0;
  bool overflow_ = false;
  uint64_t signature_ = 0;
};

// A field's value, with JSON null treated as absent (OpenAI's SDKs send null for "unset").
[[gnu::always_inline]] inline std::optional<dom::element> optional_field(
    const object_fields& object, std::string_view key) {
  auto value = object.find(key);
  if (!value || value->is_null()) return std::nullopt;
  return value;
}
// Inline, so that the key of a path made on the spot (root.field("model")) folds as a literal.
[[gnu::always_inline]] inline dom::element required_field(const object_fields& object,
                                                          const param_path& path) {
  auto value = optional_field(object, path.key);
  if (!value) fail_missing(path);
  return *value;
}

std::string_view as_string(dom::element value, const param_path& path);
bool as_bool(dom::element value, const param_path& path);
int64_t as_integer(dom::element value, const param_path& path, int64_t min, int64_t max);
double as_number(dom::element value, const param_path& path, double min, double max);
dom::array as_array(dom::element value, const param_path& path);
dom::object as_object(dom::element value, const param_path& path);

// Runs a parser body on a request built in place in the result, turning a thrown
// request_error (or an allocation failure) into the result's error instead. Filled where it
// lies: a request is large (strings, vectors, sampling), and returning one by value from the
// body and moving it into the variant cost ~400 instructions per request.
//   Result: std::variant<Request, api_error>; fn: void(Request&).
template <class Result, class Fn>
Result run_parser(Fn&& fn) noexcept {
  using request_type = std::variant_alternative_t<0, Result>;
  Result result;  // holds a default request (no allocation: its strings are short or empty)
  try {
    fn(*std::get_if<request_type>(&result));
  } catch (request_error& e) {
    result.template emplace<api_error>(std::move(e.error));
  } catch (const std::exception&) {
    api_error error;
    error.status = 500;
    error.type = "server_error";
    error.message = "The server could not process the request body.";
    result.template emplace<api_error>(std::move(error));
  }
  return result;
}

}  // namespace moat::openai::detail

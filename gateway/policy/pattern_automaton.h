// The hold-back analysis for streaming redaction: a Thompson NFA built from the RE2 patterns of the
// response rules, used only to answer "which positions of the text seen so far could still be the
// start of a match once more text arrives?". RE2 does the matching; this only decides how much of a
// stream must be held back.
//
//   auto a = moat::policy::pattern_automaton::build({R"(\b\d{3}-\d{2}-\d{4}\b)"});
//   moat::policy::automaton_run run(a.get());
//   run.feed("my ssn is 123-4");
//   run.hold_from();   // == 10: "123-4" could still become a match, everything before is final
//
// The NFA over-approximates RE2's language at every step (unknown syntax becomes a wildcard, case
// folding of non-ASCII letters becomes "any non-ASCII"), so it may hold back more than needed but
// never less. A pattern that cannot be parsed at all makes every position "open" (the whole stream
// is held until finish) and build() reports it in `warnings`.
#pragma once

#include <array>
#include <cstddef>
#include <map>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moat::policy {

// A set of code points; `wild` matches everything (used for \p{..}, invalid UTF-8, case folds).
struct char_set {
  std::vector<std::pair<char32_t, char32_t>> ranges;
  bool negate = false;
  bool wild = false;
  uint64_t ascii[2] = {0, 0};  // matches() for c < 128, filled by finish()
  bool matches(char32_t c) const {
    if (c < 128) return (ascii[c >> 6] >> (c & 63)) & 1;
    return matches_slow(c);
  }
  bool matches_slow(char32_t c) const;
  void finish();
};

enum class nfa_op : uint8_t { chars, split, jump, assert_, match };
enum class assertion : uint8_t { text_begin, text_end, line_begin, line_end, word, not_word };

struct nfa_node {
  nfa_op op = nfa_op::match;
  assertion what = assertion::word;  // op == assert_
  int out = -1;
  int out1 = -1;  // op == split
  int set = -1;   // op == chars: index into pattern_automaton::sets_
};

// Immutable after build(); shared by every stream of a policy set.
class pattern_automaton {
 public:
  static std::shared_ptr<const pattern_automaton> build(const std::vector<std::string>& patterns,
                                                        std::vector<std::string>* warnings = nullptr);
  // True when some pattern could not be analysed: every position stays open.
  bool opaque() const { return opaque_; }
  bool empty() const { return patterns_ == 0; }

 private:
  friend class automaton_run;
  friend struct nfa_builder;
  std::vector<nfa_node> nodes_;
  std::vector<char_set> sets_;
  int start_ = -1;
  bool opaque_ = false;
  size_t patterns_ = 0;
};

// Per-stream state: the live NFA threads over the text fed so far, each tagged with the global
// byte offset where it started. Not thread-safe (one per stream).
class automaton_run {
 public:
  explicit automaton_run(const pattern_automaton* automaton) : a_(automaton) {}

  // Appends bytes of the stream (chunks may split UTF-8 sequences anywhere).
  void feed(std::string_view bytes);
  // The smallest global offset that could still start a match: every byte before it is final.
  // Equals the offset fed so far when nothing is open.
  size_t hold_from() const;
  // Forgets all threads and continues as if the text before `global_offset` had been consumed
  // with `tail` (at most a few bytes ending at global_offset) as its last bytes; used after the
  // scanner released text past the held position.
  void restart(size_t global_offset, std::string_view tail);
  size_t offset() const { return pos_ + partial_.size(); }
  // True when a match recorded by the NFA could start in [from, to): RE2 can only find a match
  // starting there if this says so (the NFA's language contains RE2's).
  bool matched_in(size_t from, size_t to) const;
  // The text before `offset` was released: records that end there go, the others now start
  // at `offset` at the earliest.
  void forget_before(size_t offset);

 private:
  struct thread {
    int node;
    size_t start;
  };
  // A cached transition: the next state, where each of its nodes came from (an index into the
  // old list, or the old size for the thread that starts at this character), and which old
  // entries reached a match.
  struct dfa_edge {
    int next = -1;
    std::vector<uint32_t> src;
    std::vector<uint32_t> matched;
  };
  struct dfa_state {
    std::vector<int> nodes;  // live NFA nodes, earliest start first
    int prev_kind = 0;       // 0 none, 1 '\n', 2 word char, 3 other
    std::array<std::unique_ptr<dfa_edge>, 128> edges;
  };

  void step(char32_t c, size_t len);
  void nfa_step(const std::vector<thread>& in, char32_t c, size_t new_start, std::vector<thread>& out,
                std::vector<size_t>& matched);
  void add_closure(std::vector<thread>& out, int node, size_t start, char32_t next, bool next_known,
                   std::vector<size_t>& matched);
  bool assertion_holds(assertion what, char32_t next, bool next_known) const;
  int prev_kind() const;
  int intern(int kind, const std::vector<int>& nodes);

  const pattern_automaton* a_;
  // The lazily built DFA (per stream; cleared when it grows past a bound).
  std::vector<std::unique_ptr<dfa_state>> states_;
  std::map<std::pair<int, std::vector<int>>, int> index_;
  int cur_ = -1;
  std::vector<size_t> starts_;       // start of each node of states_[cur_]
  std::vector<size_t> next_starts_;
  std::vector<thread> threads_;
  std::vector<thread> scratch_;
  std::vector<int> stack_;
  std::vector<uint32_t> seen_;      // per node: closure generation stamp
  std::vector<uint32_t> seen_out_;  // per node: step generation stamp
  uint32_t generation_ = 0;
  // A match the NFA reached: it started in [begin, end). Not just at `begin`: threads at the same
  // node are kept once, with the earliest start, so a later start whose thread merged into an
  // earlier one reaches the match under the earlier start's name. Every start that merged lies
  // before the position where the match was reached, which is `end`.
  struct match_record {
    size_t begin, end;
  };
  void record_match(size_t begin, size_t end);
  std::vector<match_record> matches_;
  std::vector<size_t> step_matches_;
  size_t pos_ = 0;               // global offset of the next complete code point
  char32_t prev_ = 0;
  bool has_prev_ = false;        // false only at the very start of the text
  std::string partial_;          // an incomplete UTF-8 sequence at the end of what was fed
};

// Decodes one UTF-8 code point from `s` at `i`. Returns its length (0 when the sequence is
// incomplete at the end of `s`); invalid bytes decode as one byte with code point `invalid_cp`.
inline constexpr char32_t invalid_cp = 0xFFFFFFFFu;
size_t decode_utf8(std::string_view s, size_t i, char32_t* cp);

}  // namespace moat::policy

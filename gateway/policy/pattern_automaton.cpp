// The simulation over the hold-back NFA: threads tagged with their start, stepped through a lazily
// built DFA whose edges remember where each thread came from. The parser is pattern_parser.cpp.
#include <algorithm>
#include <map>

#include "policy/pattern_automaton.h"

namespace moat::policy {

namespace {

bool is_word(char32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

}  // namespace

namespace {
// Representative previous characters for the four kinds (see prev_kind()).
constexpr char32_t kind_char[4] = {0, '\n', 'a', ' '};
constexpr size_t max_dfa_states = 4096;
}  // namespace

bool automaton_run::assertion_holds(assertion what, char32_t next, bool next_known) const {
  // At the end of what was fed the next code point is unknown: an assertion that depends on it
  // may still hold, so it passes (the thread stays open).
  switch (what) {
    case assertion::text_begin: return !has_prev_;
    case assertion::line_begin: return !has_prev_ || prev_ == '\n';
    case assertion::text_end: return !next_known;
    case assertion::line_end: return !next_known || next == '\n';
    case assertion::word:
      return !next_known || (has_prev_ && is_word(prev_)) != is_word(next);
    case assertion::not_word:
      return !next_known || (has_prev_ && is_word(prev_)) == is_word(next);
  }
  return true;
}

void automaton_run::add_closure(std::vector<thread>& out, int node, size_t start, char32_t next, bool next_known,
                                std::vector<size_t>& matched) {
  // Iterative DFS over epsilon edges; first visit wins, and callers visit in start order, so the
  // thread kept for a node is the one with the earliest start.
  auto& stack = stack_;
  stack.clear();
  stack.push_back(node);
  while (!stack.empty()) {
    const int id = stack.back();
    stack.pop_back();
    if (id < 0 || seen_[id] == generation_) continue;
    seen_[id] = generation_;
    const nfa_node& n = a_->nodes_[id];
    switch (n.op) {
      case nfa_op::chars: out.push_back({id, start}); break;
      case nfa_op::match:
        if (matched.empty() || matched.back() != start) matched.push_back(start);
        break;
      case nfa_op::jump: stack.push_back(n.out); break;
      case nfa_op::split:
        stack.push_back(n.out1);
        stack.push_back(n.out);
        break;
      case nfa_op::assert_:
        if (assertion_holds(n.what, next, next_known)) stack.push_back(n.out);
        break;
    }
  }
}

int automaton_run::prev_kind() const {
  if (!has_prev_) return 0;
  if (prev_ == '\n') return 1;
  return is_word(prev_) ? 2 : 3;
}

void automaton_run::nfa_step(const std::vector<thread>& in, char32_t c, size_t new_start, std::vector<thread>& out,
                             std::vector<size_t>& matched) {
  // Closure of the pending threads (earliest start first) plus a thread starting here, then
  // consume c. Matches reached on the way are recorded with their start.
  if (seen_.size() != a_->nodes_.size()) {
    seen_.assign(a_->nodes_.size(), 0);
    seen_out_.assign(a_->nodes_.size(), 0);
  }
  ++generation_;
  scratch_.clear();
  for (const auto& t : in) add_closure(scratch_, t.node, t.start, c, true, matched);
  add_closure(scratch_, a_->start_, new_start, c, true, matched);
  out.clear();
  for (const auto& t : scratch_) {
    const nfa_node& n = a_->nodes_[t.node];
    if (!a_->sets_[n.set].matches(c) || seen_out_[n.out] == generation_) continue;
    seen_out_[n.out] = generation_;
    if (a_->nodes_[n.out].op == nfa_op::match) {
      if (matched.empty() || matched.back() != t.start) matched.push_back(t.start);
      continue;
    }
    out.push_back({n.out, t.start});
  }
}

int automaton_run::intern(int kind, const std::vector<int>& nodes) {
  auto key = std::make_pair(kind, nodes);
  auto it = index_.find(key);
  if (it != index_.end()) return it->second;
  auto st = std::make_unique<dfa_state>();
  st->nodes = nodes;
  st->prev_kind = kind;
  states_.push_back(std::move(st));
  const int id = static_cast<int>(states_.size() - 1);
  index_.emplace(std::move(key), id);
  return id;
}

void automaton_run::step(char32_t c, size_t len) {
  // The DFA state is the ordered list of live NFA nodes (earliest start first) and the kind of
  // the previous character; starts_ holds each node's start. A cached edge maps old positions in
  // the list to new ones, so a step costs one lookup and a copy of the starts.
  if (cur_ < 0 || states_.size() > max_dfa_states) {
    std::vector<int> nodes = cur_ < 0 ? std::vector<int>{} : states_[cur_]->nodes;
    if (states_.size() > max_dfa_states) {
      states_.clear();
      index_.clear();
    }
    cur_ = intern(prev_kind(), nodes);
  }
  dfa_state* s = states_[cur_].get();
  const size_t n_old = s->nodes.size();
  if (c < 128) {
    auto& e = s->edges[c];
    if (!e) {
      // Compute with surrogate starts: position i in the list, n_old for the new thread.
      threads_.clear();
      for (size_t i = 0; i < n_old; ++i) threads_.push_back({s->nodes[i], i});
      prev_ = kind_char[s->prev_kind];
      has_prev_ = s->prev_kind != 0;
      std::vector<thread> out;
      std::vector<size_t> matched;
      nfa_step(threads_, c, n_old, out, matched);
      auto edge = std::make_unique<dfa_edge>();
      std::vector<int> nodes;
      for (const auto& t : out) {
        nodes.push_back(t.node);
        edge->src.push_back(static_cast<uint32_t>(t.start));
      }
      for (size_t m : matched) edge->matched.push_back(static_cast<uint32_t>(m));
      const int kind = c == '\n' ? 1 : is_word(c) ? 2 : 3;
      edge->next = intern(kind, nodes);
      s = states_[cur_].get();  // intern() may have grown states_
      s->edges[c] = std::move(edge);
    }
    const dfa_edge& edge = *s->edges[c];
    next_starts_.clear();
    for (uint32_t src : edge.src) next_starts_.push_back(src == n_old ? pos_ : starts_[src]);
    for (uint32_t m : edge.matched) record_match(m == n_old ? pos_ : starts_[m], pos_ + len);
    starts_.swap(next_starts_);
    cur_ = edge.next;
  } else {
    threads_.clear();
    for (size_t i = 0; i < n_old; ++i) threads_.push_back({s->nodes[i], starts_[i]});
    std::vector<thread> out;
    step_matches_.clear();
    nfa_step(threads_, c, pos_, out, step_matches_);
    for (size_t m : step_matches_) record_match(m, pos_ + len);
    std::vector<int> nodes;
    starts_.clear();
    for (const auto& t : out) {
      nodes.push_back(t.node);
      starts_.push_back(t.start);
    }
    cur_ = intern(3, nodes);  // non-ASCII code points are not word characters
  }
  pos_ += len;
  prev_ = c;
  has_prev_ = true;
}

void automaton_run::record_match(size_t begin, size_t end) {
  // Overlapping records join: only "could a match start in this range" is ever asked.
  if (!matches_.empty() && begin <= matches_.back().end && end >= matches_.back().begin) {
    matches_.back().begin = std::min(matches_.back().begin, begin);
    matches_.back().end = std::max(matches_.back().end, end);
    return;
  }
  matches_.push_back({begin, end});
}

bool automaton_run::matched_in(size_t from, size_t to) const {
  if (a_->opaque_) return true;
  for (const auto& m : matches_)
    if (m.begin < to && m.end > from) return true;
  return false;
}

void automaton_run::forget_before(size_t offset) {
  std::erase_if(matches_, [&](const match_record& m) { return m.end <= offset; });
  for (auto& m : matches_) m.begin = std::max(m.begin, offset);
}

void automaton_run::feed(std::string_view bytes) {
  if (a_->empty()) {
    pos_ += bytes.size();
    return;
  }
  std::string joined;
  if (!partial_.empty()) {
    joined = partial_;
    joined.append(bytes);
    bytes = joined;
    partial_.clear();
  }
  size_t i = 0;
  while (i < bytes.size()) {
    char32_t cp;
    const size_t len = decode_utf8(bytes, i, &cp);
    if (len == 0) {
      partial_.assign(bytes.substr(i));
      break;
    }
    if (!a_->opaque_) step(cp, len);
    else pos_ += len;
    i += len;
  }
}

size_t automaton_run::hold_from() const {
  if (a_->opaque_) return 0;
  // The list never holds the match node: the first entry is the earliest open start.
  return starts_.empty() ? pos_ : starts_.front();
}

void automaton_run::restart(size_t global_offset, std::string_view tail) {
  starts_.clear();
  matches_.clear();
  partial_.clear();
  cur_ = -1;
  pos_ = global_offset;
  has_prev_ = global_offset > 0;
  prev_ = 0;
  // The last complete code point of `tail` is the previous character for assertions.
  for (size_t i = 0; i < tail.size();) {
    char32_t cp;
    const size_t len = decode_utf8(tail, i, &cp);
    if (len == 0) break;
    prev_ = cp;
    i += len;
  }
}

}  // namespace moat::policy

// The merge loop shared by rank-based BPE and score-based SentencePiece BPE: symbols in a linked
// list over one string, candidate pairs in a priority queue, stale candidates skipped on pop
// (a symbol whose length changed since the pair was queued).
#include "engine/tokenizer_bpe.h"

#include <cstdio>
#include <queue>

#include "engine/text_unicode.h"

namespace moat::engine {

namespace {

const std::string space_marker = "\xE2\x96\x81";  // U+2581 "▁"

struct symbol {
  uint32_t start, len;
  token_id id;  // -1: not a vocabulary piece (only possible before any merge)
  int prev, next;
};

struct candidate {
  double priority;  // lower first
  int left;
  uint32_t left_len, right_len;
  token_id merged;
  bool operator<(const candidate& o) const {  // std::priority_queue pops the largest
    if (priority != o.priority) return priority > o.priority;
    return left > o.left;
  }
};

// `pair(a, b)` returns {priority, merged id} or merged id -1 when the pair cannot merge.
template <typename PairFn>
std::vector<symbol> merge_symbols(std::string_view text, std::vector<symbol> syms, PairFn pair) {
  std::priority_queue<candidate> queue;
  auto try_pair = [&](int l) {
    if (l < 0 || syms[l].next < 0) return;
    const symbol& a = syms[l];
    const symbol& b = syms[a.next];
    auto [prio, merged] = pair(text, a, b);
    if (merged >= 0) queue.push({prio, l, a.len, b.len, merged});
  };
  for (int i = 0; i + 1 < static_cast<int>(syms.size()); ++i) try_pair(i);
  while (!queue.empty()) {
    const candidate c = queue.top();
    queue.pop();
    symbol& a = syms[c.left];
    if (a.len == 0 || a.len != c.left_len || a.next < 0) continue;
    symbol& b = syms[a.next];
    if (b.len != c.right_len) continue;
    a.len += b.len;
    a.id = c.merged;
    b.len = 0;
    a.next = b.next;
    if (a.next >= 0) syms[a.next].prev = c.left;
    try_pair(a.prev);
    try_pair(c.left);
  }
  std::vector<symbol> out;
  for (int i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) out.push_back(syms[i]);
  return out;
}

// One symbol per UTF-8 character, each looked up as a piece.
std::vector<symbol> char_symbols(std::string_view text, const vocabulary& v) {
  std::vector<symbol> syms;
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_char_length(text, i);
    auto it = v.piece_to_id.find(text.substr(i, n));
    const int idx = static_cast<int>(syms.size());
    syms.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(n),
                    it == v.piece_to_id.end() ? -1 : it->second, idx - 1, -1});
    if (idx > 0) syms[idx - 1].next = idx;
    i += n;
  }
  return syms;
}

std::string byte_piece(unsigned char b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", b);
  return buf;
}

// Applies the SentencePiece-style normalization: "▁" prefix and spaces as "▁".
std::string normalize_spm(std::string_view text, bool replace_space, bool add_prefix, std::string_view marker) {
  std::string s;
  s.reserve(text.size() + 8);
  if (add_prefix) s += marker;
  for (char c : text) {
    if (c == ' ' && replace_space) s += marker;
    else s.push_back(c);
  }
  return s;
}

bool wants_prefix(prefix_rule rule, tokenizer::fragment_position pos) {
  switch (rule) {
    case prefix_rule::never: return false;
    case prefix_rule::at_start: return pos.at_start;
    case prefix_rule::after_special: return pos.at_start || pos.after_special;
    case prefix_rule::always: return true;
  }
  return false;
}

}  // namespace

// ---- rank-based BPE -------------------------------------------------------------------------

bpe_tokenizer::bpe_tokenizer(vocabulary vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                             bpe_options options)
    : tokenizer(std::move(vocab), options.strip_leading_space), options_(std::move(options)) {
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [l, r] = merges[rank];
    auto a = vocab_.piece_to_id.find(l), b = vocab_.piece_to_id.find(r), m = vocab_.piece_to_id.find(l + r);
    if (a == vocab_.piece_to_id.end() || b == vocab_.piece_to_id.end() || m == vocab_.piece_to_id.end()) continue;
    const uint64_t key = (static_cast<uint64_t>(a->second) << 32) | static_cast<uint32_t>(b->second);
    merges_.emplace(key, std::make_pair(static_cast<int32_t>(rank), m->second));  // first rank wins
  }
  build_special_tables();  // now with this class's normalize()
}

std::string bpe_tokenizer::normalize(std::string_view segment) const {
  if (!options_.normalizer_prepend && !options_.normalizer_replace_space) return std::string(segment);
  return normalize_spm(segment, options_.normalizer_replace_space, options_.normalizer_prepend && !segment.empty(),
                       space_marker);
}

void bpe_tokenizer::encode_plain(std::string_view text, fragment_position pos, std::vector<token_id>& out) const {
  std::string normalized;
  if (options_.metaspace) {
    // Metaspace adds its "▁" only when the text does not already start with one (or a space).
    const bool prefix = wants_prefix(options_.prefix, pos) && !text.starts_with(' ') && !text.starts_with(space_marker);
    normalized = normalize_spm(text, true, prefix, space_marker);
    text = normalized;
  }
  std::vector<std::string_view> parts, words;
  if (options_.metaspace_split) {
    // a new word begins at every "▁"
    size_t start = 0;
    for (size_t i = 1; i < text.size(); ++i)
      if (text.compare(i, space_marker.size(), space_marker) == 0) {
        parts.push_back(text.substr(start, i - start));
        start = i;
      }
    parts.push_back(text.substr(start));
  } else if (options_.digits_individual) {
    split_digits(text, parts);
  } else {
    parts.push_back(text);
  }
  for (std::string_view p : parts) pretokenize(options_.pretokenizer, p, words);
  for (std::string_view w : words) {
    if (options_.byte_level) encode_word(bytes_to_gpt2_unicode(w), out);
    else encode_word(w, out);
  }
}

void bpe_tokenizer::encode_word(std::string_view word, std::vector<token_id>& out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    auto it = vocab_.piece_to_id.find(word);
    if (it != vocab_.piece_to_id.end()) {
      out.push_back(it->second);
      return;
    }
  }
  auto syms = merge_symbols(word, char_symbols(word, vocab_),
                            [this](std::string_view, const symbol& a, const symbol& b) {
                              if (a.id < 0 || b.id < 0) return std::make_pair(0.0, token_id{-1});
                              auto it = merges_.find((static_cast<uint64_t>(a.id) << 32) | static_cast<uint32_t>(b.id));
                              if (it == merges_.end()) return std::make_pair(0.0, token_id{-1});
                              return std::make_pair(static_cast<double>(it->second.first), it->second.second);
                            });
  bool last_unknown = false;
  for (const symbol& s : syms) {
    if (s.id >= 0) {
      out.push_back(s.id);
      last_unknown = false;
      continue;
    }
    const std::string_view piece = word.substr(s.start, s.len);
    if (options_.byte_fallback) {
      bool all = true;
      for (char c : piece) all = all && vocab_.piece_to_id.count(byte_piece(static_cast<unsigned char>(c)));
      if (all) {
        for (char c : piece) out.push_back(vocab_.piece_to_id.at(byte_piece(static_cast<unsigned char>(c))));
        last_unknown = false;
        continue;
      }
    }
    if (vocab_.unk < 0) continue;  // no <unk>: the reference drops the character as well
    if (!(options_.fuse_unk && last_unknown)) out.push_back(vocab_.unk);
    last_unknown = true;
  }
}

// ---- score-based SentencePiece BPE ---------------------------------------------------------

spm_tokenizer::spm_tokenizer(vocabulary vocab, spm_options options)
    : tokenizer(std::move(vocab), options.strip_leading_space), options_(std::move(options)) {
  if (vocab_.scores.empty()) throw tokenizer_error("a SentencePiece vocabulary needs scores");
}

void spm_tokenizer::encode_plain(std::string_view text, fragment_position pos, std::vector<token_id>& out) const {
  const std::string s = normalize_spm(text, options_.replace_space, wants_prefix(options_.prefix, pos),
                                      options_.replace_space ? std::string_view(space_marker) : std::string_view(" "));
  auto syms = merge_symbols(s, char_symbols(s, vocab_),
                            [this](std::string_view t, const symbol& a, const symbol& b) {
                              auto it = vocab_.piece_to_id.find(t.substr(a.start, a.len + b.len));
                              if (it == vocab_.piece_to_id.end()) return std::make_pair(0.0, token_id{-1});
                              return std::make_pair(-static_cast<double>(vocab_.scores[it->second]), it->second);
                            });
  for (const symbol& sym : syms) {
    if (sym.id >= 0) {
      out.push_back(sym.id);
      continue;
    }
    for (char c : std::string_view(s).substr(sym.start, sym.len)) {
      auto it = vocab_.piece_to_id.find(byte_piece(static_cast<unsigned char>(c)));
      if (it != vocab_.piece_to_id.end()) out.push_back(it->second);
      else if (vocab_.unk >= 0) out.push_back(vocab_.unk);
    }
  }
}

}  // namespace moat::engine

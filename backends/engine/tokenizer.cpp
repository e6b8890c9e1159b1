// The parts every tokenizer shares: the vocabulary table, special-token splitting, BOS/EOS, decode.
#include "engine/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdio>

#include "engine/detokenizer.h"
#include "engine/text_unicode.h"

namespace moat::engine {

namespace {

// "<0x41>" -> 0x41; nullopt for anything else.
std::optional<unsigned char> parse_byte_piece(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return std::nullopt;
  unsigned v = 0;
  for (char c : p.substr(3, 2)) {
    v <<= 4;
    if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
    else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
    else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
    else return std::nullopt;
  }
  return static_cast<unsigned char>(v);
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, from.size(), from) == 0) {
      out.append(to);
      i += from.size();
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

const std::string empty_string;

}  // namespace

void vocabulary::finish() {
  const size_t n = pieces.size();
  if (n == 0) throw tokenizer_error("the vocabulary is empty");
  if (kinds.empty()) kinds.assign(n, token_kind::normal);
  if (kinds.size() != n) throw tokenizer_error("token types and tokens differ in count");
  if (!scores.empty() && scores.size() != n) throw tokenizer_error("scores and tokens differ in count");
  for (token_id* id : {&bos, &eos, &unk, &pad})
    if (*id >= static_cast<token_id>(n)) *id = -1;  // GGUF files sometimes name ids past the table
  piece_to_id.clear();
  piece_to_id.reserve(n);
  for (size_t i = 0; i < n; ++i) piece_to_id.emplace(pieces[i], static_cast<token_id>(i));
  for (size_t i = 0; i < n; ++i) {
    const auto k = kinds[i];
    if ((k == token_kind::control || k == token_kind::user_defined) && !pieces[i].empty() &&
        std::find(specials.begin(), specials.end(), static_cast<token_id>(i)) == specials.end())
      specials.push_back(static_cast<token_id>(i));
  }
  std::erase_if(specials, [n](token_id id) { return id < 0 || id >= static_cast<token_id>(n); });
  if (eos >= 0 && std::find(end_of_generation.begin(), end_of_generation.end(), eos) == end_of_generation.end())
    end_of_generation.insert(end_of_generation.begin(), eos);
}

tokenizer::tokenizer(vocabulary vocab, bool strip_leading_space)
    : vocab_(std::move(vocab)), strip_leading_space_(strip_leading_space) {
  // Longest specials first so "<|eot_id|>" wins over a shorter added token that prefixes it.
  build_special_tables();
  bytes_.resize(vocab_.pieces.size());
  for (size_t i = 0; i < vocab_.pieces.size(); ++i) {
    const std::string& p = vocab_.pieces[i];
    const token_kind k = vocab_.kinds[i];
    if (k == token_kind::byte || (vocab_.encoding != piece_encoding::byte_level && parse_byte_piece(p))) {
      if (auto b = parse_byte_piece(p)) {
        bytes_[i] = std::string(1, static_cast<char>(*b));
        continue;
      }
    }
    if (k == token_kind::control || k == token_kind::user_defined || k == token_kind::unknown) {
      // Added tokens are stored as their text; SentencePiece user-defined pieces may hold "▁".
      bytes_[i] = vocab_.encoding == piece_encoding::sentencepiece ? replace_all(p, "\xE2\x96\x81", " ") : p;
      continue;
    }
    switch (vocab_.encoding) {
      case piece_encoding::sentencepiece: bytes_[i] = replace_all(p, "\xE2\x96\x81", " "); break;
      case piece_encoding::byte_level: bytes_[i] = gpt2_unicode_to_bytes(p).value_or(p); break;
      case piece_encoding::raw: bytes_[i] = p; break;
    }
  }
}

void tokenizer::build_special_tables() {
  raw_specials_.clear();
  normalized_specials_.clear();
  for (token_id id : vocab_.specials) {
    const bool normalized = std::find(vocab_.normalized_specials.begin(), vocab_.normalized_specials.end(), id) !=
                            vocab_.normalized_specials.end();
    if (normalized) normalized_specials_.emplace_back(normalize(vocab_.pieces[id]), id);
    else raw_specials_.emplace_back(vocab_.pieces[id], id);
  }
  auto longest_first = [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); };
  std::stable_sort(raw_specials_.begin(), raw_specials_.end(), longest_first);
  std::stable_sort(normalized_specials_.begin(), normalized_specials_.end(), longest_first);
  std::erase_if(normalized_specials_, [](const auto& s) { return s.first.empty(); });
}

namespace {

// Splits text at occurrences of any special (longest first at each position); calls on_text for
// the non-empty gaps and on_special for each match.
template <typename OnText, typename OnSpecial>
void split_specials(std::string_view text, const std::vector<std::pair<std::string, token_id>>& specials,
                    OnText on_text, OnSpecial on_special) {
  // Most bytes cannot start any special (Llama 3 has 256 of them, all starting with '<').
  std::array<bool, 256> can_start{};
  for (const auto& s : specials) can_start[static_cast<unsigned char>(s.first[0])] = true;
  size_t start = 0;
  for (size_t i = 0; i < text.size() && !specials.empty();) {
    if (!can_start[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    const std::pair<std::string, token_id>* hit = nullptr;
    for (const auto& s : specials)
      if (s.first[0] == text[i] && text.compare(i, s.first.size(), s.first) == 0) {
        hit = &s;
        break;
      }
    if (!hit) {
      ++i;
      continue;
    }
    if (i > start) on_text(text.substr(start, i - start));
    on_special(hit->second);
    i += hit->first.size();
    start = i;
  }
  if (start < text.size()) on_text(text.substr(start));
}

const std::vector<std::pair<std::string, token_id>> no_specials;

}  // namespace

std::vector<token_id> tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<token_id> out;
  if (add_special && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
  // at_start: the fragment begins the input (no special token before it), as HF's
  // prepend_scheme "first" decides; after_special: llama.cpp's rule.
  fragment_position pos{true, false};
  auto on_special = [&](token_id id) {
    out.push_back(id);
    pos = {false, true};
  };
  auto on_normalized_text = [&](std::string_view t) {
    encode_plain(t, pos, out);
    pos = {false, false};
  };
  auto on_raw_text = [&](std::string_view t) {
    const std::string norm = normalize(t);
    split_specials(norm, parse_special ? normalized_specials_ : no_specials, on_normalized_text, on_special);
  };
  split_specials(text, parse_special ? raw_specials_ : no_specials, on_raw_text, on_special);
  if (add_special && vocab_.add_eos && vocab_.eos >= 0) out.push_back(vocab_.eos);
  return out;
}

std::string tokenizer::decode(std::span<const token_id> ids, bool skip_special) const {
  std::string bytes;
  for (token_id id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    if (skip_special && is_special(id)) continue;
    bytes += bytes_[id];
  }
  if (strip_leading_space_ && !bytes.empty() && bytes[0] == ' ') bytes.erase(0, 1);
  return utf8_sanitize(bytes);
}

const std::string& tokenizer::token_bytes(token_id id) const {
  return id >= 0 && id < vocab_size() ? bytes_[id] : empty_string;
}

const std::string& tokenizer::token_text(token_id id) const {
  return id >= 0 && id < vocab_size() ? vocab_.pieces[id] : empty_string;
}

token_kind tokenizer::kind(token_id id) const {
  return id >= 0 && id < vocab_size() ? vocab_.kinds[id] : token_kind::unused;
}

bool tokenizer::is_special(token_id id) const {
  const token_kind k = kind(id);
  return k == token_kind::control || k == token_kind::unused;
}

std::optional<token_id> tokenizer::find(std::string_view piece) const {
  auto it = vocab_.piece_to_id.find(piece);
  if (it == vocab_.piece_to_id.end()) return std::nullopt;
  return it->second;
}

bool tokenizer::is_end_of_generation(token_id id) const {
  return std::find(vocab_.end_of_generation.begin(), vocab_.end_of_generation.end(), id) !=
         vocab_.end_of_generation.end();
}

void tokenizer::add_end_of_generation(token_id id) {
  if (id >= 0 && id < vocab_size() && !is_end_of_generation(id)) vocab_.end_of_generation.push_back(id);
}

}  // namespace moat::engine

// The parts every tokenizer shares: the vocabulary table, special-token splitting, BOS/EOS, decode.
#include "engine/tokenizer.h"

#include <algorithm>
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
  std::sort(vocab_.specials.begin(), vocab_.specials.end(), [this](token_id a, token_id b) {
    return vocab_.pieces[a].size() > vocab_.pieces[b].size();
  });
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

std::vector<token_id> tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<token_id> out;
  if (add_special && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
  fragment_position pos{true, false};
  size_t start = 0;
  if (parse_special && !vocab_.specials.empty()) {
    for (size_t i = 0; i < text.size();) {
      token_id hit = -1;
      for (token_id id : vocab_.specials) {
        const std::string& p = vocab_.pieces[id];
        if (p[0] == text[i] && text.compare(i, p.size(), p) == 0) {
          hit = id;
          break;
        }
      }
      if (hit < 0) {
        ++i;
        continue;
      }
      if (i > start) encode_plain(text.substr(start, i - start), pos, out);
      out.push_back(hit);
      pos = {false, true};
      i += vocab_.pieces[hit].size();
      start = i;
    }
  }
  if (start < text.size()) encode_plain(text.substr(start), pos, out);
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
  auto it = vocab_.piece_to_id.find(std::string(piece));
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

// tokenizer.h — text <-> token ids for the engine (SentencePiece, byte-level BPE, GGUF vocabularies).
//
//   auto tok = moat::engine::load_tokenizer("../shared/fixtures/tinystories-656K-hf");
//   std::vector<moat::engine::token_id> ids = tok->encode("Once upon a time", /*add_special=*/true);
//   std::string text = tok->decode(ids);                 // "Once upon a time" (BOS skipped)
//   bool stop = tok->is_end_of_generation(ids.back());   // eos or e.g. <|eot_id|>
//   std::string raw = tok->token_bytes(ids[1]);          // bytes for logprobs ("Once", no leading "▁")
//
// Every tokenizer shares one vocabulary table (class `vocabulary`: pieces, kinds, special ids) and
// differs only in the algorithm that splits plain text (`encode_plain`). Special and added tokens
// ("<|eot_id|>", "<s>") written in the text are matched first, longest first, and become one id each
// when `parse_special` is true; the text between them goes through the algorithm.
//
// Thread safety: a loaded tokenizer is immutable; encode/decode may be called from any thread.
// Errors at load time throw moat::engine::tokenizer_error naming the file; encode/decode never throw
// on any input (invalid UTF-8 goes through byte fallback or is replaced by U+FFFD on decode).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moat::engine {

using token_id = int32_t;

class tokenizer_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a vocabulary entry is; the values match GGUF's tokenizer.ggml.token_type and
// sentencepiece's ModelProto.SentencePiece.Type so adapters pass them through unchanged.
enum class token_kind : int32_t {
  normal = 1,
  unknown = 2,
  control = 3,       // special: <s>, </s>, <|eot_id|>; skipped by decode(skip_special=true)
  user_defined = 4,  // added token matched verbatim in text, decoded as its text
  unused = 5,
  byte = 6,          // <0x41>-style byte-fallback piece: decodes to one raw byte
};

// How a piece's stored text maps to the bytes it stands for.
enum class piece_encoding {
  sentencepiece,  // "▁" (U+2581) stands for a space; <0xNN> pieces are raw bytes
  byte_level,     // GPT-2 byte-to-unicode map: each code point stands for one byte
  raw,            // the piece is its own bytes (llama2.c tok512.bin)
};

// Hash for unordered maps keyed by std::string that are searched with string_view (no allocation).
struct string_hash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// The shared vocabulary: index = token id. Built by the loaders, read by the algorithms.
struct vocabulary {
  std::vector<std::string> pieces;   // stored text of each token
  std::vector<float> scores;         // SentencePiece / llama.cpp scores (empty for merge-rank BPE)
  std::vector<token_kind> kinds;     // one per piece
  piece_encoding encoding = piece_encoding::sentencepiece;
  token_id bos = -1, eos = -1, unk = -1, pad = -1;
  std::vector<token_id> end_of_generation;  // eos plus e.g. <|eot_id|>, <|im_end|>, <|end_of_text|>
  bool add_bos = false;                     // add_special adds BOS at the start
  bool add_eos = false;                     // add_special adds EOS at the end
  // Ids matched verbatim in text when parse_special is set (control and user_defined tokens,
  // and HF added_tokens). Filled by finish(); loaders may add more before calling it.
  std::vector<token_id> specials;
  // Of those, the ones HF marks normalized=true: matched after the text is normalized, against
  // their normalized content (tinystories: "<|end_story|>" is found as "▁<|end_story|>").
  std::vector<token_id> normalized_specials;
  std::unordered_map<std::string, token_id, string_hash, std::equal_to<>> piece_to_id;

  // Fills piece_to_id and specials (control + user_defined pieces that are non-empty), puts eos in
  // end_of_generation. Throws tokenizer_error on an inconsistent table (sizes differ, ids out of range).
  void finish();
  int32_t size() const { return static_cast<int32_t>(pieces.size()); }
};

class tokenizer {
 public:
  virtual ~tokenizer() = default;

  // Where a fragment of text (between special tokens) sits: the SentencePiece dummy prefix applies
  // to the start of the input in HF/sentencepiece, and after every special token in llama.cpp.
  struct fragment_position {
    bool at_start;       // the fragment begins the input
    bool after_special;  // a special token precedes it
  };

  // Text -> ids. add_special: BOS (and EOS) as the model's tokenizer config says (vocab.add_bos /
  // add_eos). parse_special: special/added token strings in the text become their ids; false treats
  // them as ordinary text. Encode a rendered chat template with encode_chat_prompt()
  // (chat_template.h): it already holds its BOS text.
  std::vector<token_id> encode(std::string_view text, bool add_special = true,
                               bool parse_special = true) const;

  // Ids -> UTF-8 text. skip_special drops control tokens (BOS/EOS/...). Out-of-range ids are skipped.
  // The SentencePiece leading space of the first token is stripped as the reference decoders do.
  // Bytes that do not form valid UTF-8 become U+FFFD.
  std::string decode(std::span<const token_id> ids, bool skip_special = true) const;

  // The raw bytes one token contributes to the text (not necessarily valid UTF-8 on its own):
  // "▁the" -> " the", "<0x0A>" -> "\n", byte-level "Ġthe" -> " the", control tokens -> their text.
  // Out-of-range ids give "".
  const std::string& token_bytes(token_id id) const;

  // The stored piece ("▁the", "Ġthe", "<0x0A>"), as /tokenize shows it. Out of range gives "".
  const std::string& token_text(token_id id) const;
  token_kind kind(token_id id) const;
  bool is_special(token_id id) const;  // control (and unknown/unused): hidden by skip_special
  std::optional<token_id> find(std::string_view piece) const;

  int32_t vocab_size() const { return vocab_.size(); }
  token_id bos_id() const { return vocab_.bos; }  // -1 when the model has none
  token_id eos_id() const { return vocab_.eos; }
  const std::vector<token_id>& end_of_generation_ids() const { return vocab_.end_of_generation; }
  bool is_end_of_generation(token_id id) const;
  std::string bos_text() const { return vocab_.bos >= 0 ? vocab_.pieces[vocab_.bos] : std::string(); }
  std::string eos_text() const { return vocab_.eos >= 0 ? vocab_.pieces[vocab_.eos] : std::string(); }
  bool adds_bos() const { return vocab_.add_bos; }
  // True when decoding drops one leading space of the text (SentencePiece add_dummy_prefix and
  // HF decoders with Strip(" ", 1)); the streaming detokenizer applies the same rule.
  bool strips_leading_space() const { return strip_leading_space_; }
  // "sentencepiece", "bpe", "spm-bpe", "llama2c", "gguf-llama", "gguf-gpt2": for logs and /v1/models.
  virtual std::string_view name() const = 0;
  const vocabulary& vocab() const { return vocab_; }

  // Adds an id to the end-of-generation set (from generation_config.json's eos_token_id list).
  void add_end_of_generation(token_id id);

 protected:
  explicit tokenizer(vocabulary vocab, bool strip_leading_space);
  // Splits a non-empty, already normalized text holding no special tokens, appending ids to out.
  virtual void encode_plain(std::string_view text, fragment_position pos, std::vector<token_id>& out) const = 0;
  // The HF normalizer, applied to each text segment between raw (non-normalized) specials before
  // normalized specials are searched in it. Identity unless a subclass has one.
  virtual std::string normalize(std::string_view segment) const { return std::string(segment); }
  // Builds the special-token match tables; subclasses with a normalizer call it again at the end of
  // their constructor (normalize() is virtual, so the base constructor cannot see theirs).
  void build_special_tables();

  vocabulary vocab_;
  std::vector<std::string> bytes_;  // token_bytes of each id, precomputed
  // (text to find, id), longest first: raw ones on the input, normalized ones on normalized segments.
  std::vector<std::pair<std::string, token_id>> raw_specials_, normalized_specials_;
  bool strip_leading_space_;
};

// Loads the tokenizer of a model:
//  - a Hugging Face folder: tokenizer.json (BPE: byte-level or SentencePiece-style) preferred, else
//    tokenizer.model (libsentencepiece); special ids and add_bos from tokenizer_config.json; extra
//    end-of-generation ids from generation_config.json;
//  - a .gguf file: tokenizer.ggml.* metadata (model "llama" or "gpt2");
//  - a llama2.c tokenizer .bin (tok512.bin, tokenizer.bin);
//  - a sentencepiece .model file.
// Throws tokenizer_error with the path and the reason.
std::unique_ptr<tokenizer> load_tokenizer(const std::filesystem::path& model_folder_or_file);

}  // namespace moat::engine

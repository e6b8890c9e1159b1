// SentencePiece models (tokenizer.model) through libsentencepiece: the library splits the text,
// the shared vocabulary table (filled from the model's pieces) does specials and decoding.
#include <sentencepiece_processor.h>

#include "engine/tokenizer_loaders.h"

namespace moat::engine {

namespace {

class sentencepiece_tokenizer final : public tokenizer {
 public:
  sentencepiece_tokenizer(vocabulary v, std::unique_ptr<sentencepiece::SentencePieceProcessor> sp)
      : tokenizer(std::move(v), true), sp_(std::move(sp)) {}
  std::string_view name() const override { return "sentencepiece"; }

 protected:
  // The library adds its dummy prefix to every call; specials are split out beforehand, as
  // transformers' slow LlamaTokenizer does.
  void encode_plain(std::string_view text, fragment_position, std::vector<token_id>& out) const override {
    std::vector<int> ids;
    if (!sp_->Encode(text, &ids).ok()) return;  // only fails on an unloaded model
    out.insert(out.end(), ids.begin(), ids.end());
  }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace

std::unique_ptr<tokenizer> load_sentencepiece_model(const std::filesystem::path& file, const hf_token_config& cfg) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->Load(file.string());
  if (!status.ok()) throw tokenizer_error(file.string() + ": not a SentencePiece model: " + status.ToString());
  vocabulary v;
  v.encoding = piece_encoding::sentencepiece;
  const int n = sp->GetPieceSize();
  v.pieces.reserve(n);
  for (int i = 0; i < n; ++i) {
    v.pieces.push_back(sp->IdToPiece(i));
    v.scores.push_back(sp->GetScore(i));
    token_kind k = token_kind::normal;
    if (sp->IsControl(i)) k = token_kind::control;
    else if (sp->IsUnknown(i)) k = token_kind::unknown;
    else if (sp->IsByte(i)) k = token_kind::byte;
    else if (sp->IsUnused(i)) k = token_kind::unused;
    v.kinds.push_back(k);
  }
  v.bos = sp->bos_id();
  v.eos = sp->eos_id();
  v.unk = sp->unk_id();
  v.pad = sp->pad_id();
  v.add_bos = v.bos >= 0;
  apply_hf_token_config(v, cfg);
  v.finish();
  return std::make_unique<sentencepiece_tokenizer>(std::move(v), std::move(sp));
}

}  // namespace moat::engine

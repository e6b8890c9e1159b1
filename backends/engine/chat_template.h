// chat_template.h — OpenAI messages -> the prompt text a model was trained on.
//
//   auto tmpl = moat::engine::load_chat_template("../shared/fixtures/tinystories-656K-hf");
//   std::vector<moat::engine::chat_message> msgs = {{"system", "Be brief."}, {"user", "Hi"}};
//   moat::engine::chat_render_options opt;
//   opt.bos_token = tok->bos_text();  opt.eos_token = tok->eos_text();
//   std::string prompt = tmpl.render(msgs, opt);       // add_generation_prompt defaults to true
//   auto ids = moat::engine::encode_chat_prompt(*tok, prompt);   // BOS once, specials parsed
//
// The model's own template (tokenizer_config.json "chat_template", a Jinja string) is rendered by
// moat's Jinja-subset engine (engine/jinja_*.h). Models that ship none get a built-in template chosen
// by name; see docs/models.md for which. Parsing happens once at load; render() is const and may be
// called from any thread.
//
// Errors: a template that does not parse throws chat_template_error at load (naming the line). At
// render time a template's raise_exception("...") or an evaluation error throws chat_template_error
// with that message; callers turn it into a 400 invalid_request_error.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer.h"

namespace moat::engine {

class chat_template_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct chat_message {
  std::string role;     // "system", "user", "assistant", "tool", ...; "developer" renders as "system"
  std::string content;  // text; multi-part OpenAI content is joined by the protocol layer
  std::string name;     // optional, "" when absent (exposed to the template only when set)
};

struct chat_render_options {
  bool add_generation_prompt = true;
  std::string bos_token;  // the tokenizer's BOS/EOS text, as transformers passes them
  std::string eos_token;
  std::string unk_token;
  std::string pad_token;
  // Extra top-level string variables some templates read (e.g. "date_string" for Llama 3.1).
  std::map<std::string, std::string> extra;
};

namespace jinja {
class template_program;  // engine/jinja_program.h
}

class chat_template {
 public:
  // Parses a Jinja template source. `name` appears in errors and logs.
  static chat_template from_source(std::string source, std::string name = "custom");
  // A built-in template: "chatml", "llama2", "llama3", "zephyr", "mistral", "plain".
  // Throws chat_template_error for an unknown name.
  static chat_template builtin(std::string_view name);

  std::string render(const std::vector<chat_message>& messages,
                     const chat_render_options& options) const;

  const std::string& name() const { return name_; }
  const std::string& source() const { return source_; }

 private:
  chat_template() = default;
  std::string name_;
  std::string source_;
  std::shared_ptr<const jinja::template_program> program_;  // shared: copies are cheap
};

// Encodes a rendered prompt: specials in it become their ids, and BOS is put first when the
// tokenizer adds one and the template did not write it (the built-in "plain" template writes none).
std::vector<token_id> encode_chat_prompt(const tokenizer& tok, std::string_view prompt);

// The model's template: tokenizer_config.json "chat_template" (a string, or a list of named
// templates of which "default" is taken) in a model folder; for a .gguf, the metadata key
// tokenizer.chat_template. When the model has none, `fallback` names the built-in used
// ("plain" by default: see docs/models.md). Throws chat_template_error when the template exists but
// does not parse, or the fallback name is unknown.
chat_template load_chat_template(const std::filesystem::path& model_folder_or_file,
                                 std::string_view fallback = "plain");

}  // namespace moat::engine

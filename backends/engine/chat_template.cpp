// chat_template: the model's Jinja template (or a built-in one) rendered by the Jinja subset.
#include "engine/chat_template.h"

#include <simdjson.h>

#include "engine/gguf.h"
#include "engine/jinja_program.h"
#include "engine/model_error.h"
#include "engine/tokenizer_loaders.h"

namespace moat::engine {

namespace {

// Built-in templates, the published ones of the model families, for models that ship none.
// "plain" (the default fallback) joins the message texts with newlines and adds nothing else, so a
// base model (tinystories) simply continues the text it is given.
struct builtin_entry {
  const char* name;
  const char* source;
};

const builtin_entry builtins[] = {
    {"plain",
     "{% for message in messages %}{% if not loop.first %}{{ '\\n' }}{% endif %}{{ message['content'] }}{% endfor %}"},
    {"chatml",
     "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
     "'\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"},
    {"llama2",
     "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
     "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif "
     "%}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
     "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
     "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
     "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
     "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] "
     "== 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"},
    {"llama3",
     "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
     "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
     "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
     "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"},
    {"zephyr",
     "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + "
     "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n{% "
     "elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif "
     "%}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"},
    {"mistral",
     "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
     "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
     "message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
     "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
     "are supported!') }}{% endif %}{% endfor %}"},
};

std::optional<std::string> template_from_tokenizer_config(const std::filesystem::path& file) {
  if (!std::filesystem::exists(file)) return std::nullopt;
  simdjson::dom::parser parser;
  simdjson::dom::element root, t;
  std::string text;
  try {
    text = read_json_text(file);
  } catch (const tokenizer_error& e) {
    throw chat_template_error(e.what());
  }
  const simdjson::padded_string json(text);
  if (auto err = parser.parse(json).get(root))
    throw chat_template_error(file.string() + ": " + simdjson::error_message(err));
  if (root["chat_template"].get(t) != simdjson::SUCCESS || t.is_null()) return std::nullopt;
  std::string_view s;
  if (t.get(s) == simdjson::SUCCESS) return std::string(s);
  simdjson::dom::array list;
  if (t.get(list) == simdjson::SUCCESS) {  // [{"name": "default", "template": "..."}, ...]
    for (auto entry : list) {
      std::string_view name, src;
      if (entry["name"].get(name) == simdjson::SUCCESS && name == "default" &&
          entry["template"].get(src) == simdjson::SUCCESS)
        return std::string(src);
    }
  }
  throw chat_template_error(file.string() + ": chat_template is neither a string nor a list with a \"default\" entry");
}

}  // namespace

chat_template chat_template::from_source(std::string source, std::string name) {
  chat_template t;
  t.name_ = std::move(name);
  t.source_ = std::move(source);
  try {
    t.program_ = jinja::template_program::parse(t.source_);
  } catch (const std::exception& e) {
    throw chat_template_error("chat template " + t.name_ + ": " + e.what());
  }
  return t;
}

chat_template chat_template::builtin(std::string_view name) {
  for (const auto& b : builtins)
    if (name == b.name) return from_source(b.source, std::string("builtin:") + b.name);
  std::string known;
  for (const auto& b : builtins) known += std::string(known.empty() ? "" : ", ") + b.name;
  throw chat_template_error("no built-in chat template named \"" + std::string(name) + "\" (known: " + known + ")");
}

std::string chat_template::render(const std::vector<chat_message>& messages, const chat_render_options& o) const {
  jinja::value_list msgs;
  for (const auto& m : messages) {
    // OpenAI's "developer" role is its newer name for "system"; model templates know only the latter.
    const std::string& role = m.role == "developer" ? std::string("system") : m.role;
    jinja::value msg = jinja::value::dict({{"role", jinja::value(role)}, {"content", jinja::value(m.content)}});
    if (!m.name.empty()) msg.set("name", jinja::value(m.name));
    msgs.push_back(msg);
  }
  // As transformers calls it: tools and documents are passed as None when absent.
  jinja::value_dict vars = {
      {"messages", jinja::value::list(std::move(msgs))},
      {"add_generation_prompt", jinja::value(o.add_generation_prompt)},
      {"bos_token", jinja::value(o.bos_token)},
      {"eos_token", jinja::value(o.eos_token)},
      {"unk_token", jinja::value(o.unk_token)},
      {"pad_token", jinja::value(o.pad_token)},
      {"tools", jinja::value::none()},
      {"documents", jinja::value::none()},
  };
  for (const auto& [k, v] : o.extra) vars.emplace_back(k, jinja::value(v));
  try {
    return program_->render(vars);
  } catch (const std::exception& e) {
    throw chat_template_error(e.what());
  }
}

std::vector<token_id> encode_chat_prompt(const tokenizer& tok, std::string_view prompt) {
  std::vector<token_id> ids = tok.encode(prompt, /*add_special=*/false, /*parse_special=*/true);
  if (tok.adds_bos() && tok.bos_id() >= 0 && (ids.empty() || ids.front() != tok.bos_id()))
    ids.insert(ids.begin(), tok.bos_id());
  return ids;
}

chat_template load_chat_template(const std::filesystem::path& path, std::string_view fallback) {
  std::optional<std::string> source;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    source = template_from_tokenizer_config(path / "tokenizer_config.json");
  } else if (path.extension() == ".gguf") {
    try {
      source = gguf_file::open(path)->get_string_or("tokenizer.chat_template");
    } catch (const model_error& e) {
      throw chat_template_error(e.what());
    }
  }
  if (source) return chat_template::from_source(std::move(*source), path.filename().string());
  return chat_template::builtin(fallback);
}

}  // namespace moat::engine

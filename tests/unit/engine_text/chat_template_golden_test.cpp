// Chat templates rendered by our Jinja subset must equal transformers' apply_chat_template
// (tests/golden/text/chat_templates.json, made by tools/make_text_goldens.py templates).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "engine/chat_template.h"

namespace moat::engine {
namespace {

namespace fs = std::filesystem;
const fs::path golden = fs::path(MOAT_SOURCE_DIR) / "tests/golden/text";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(chat_template_golden, every_template_and_conversation_matches_transformers) {
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.load((golden / "chat_templates.json").string());
  chat_render_options base;
  base.bos_token = std::string(std::string_view(root["tokens"]["bos_token"]));
  base.eos_token = std::string(std::string_view(root["tokens"]["eos_token"]));
  std::map<std::string, chat_template> templates;
  int checked = 0, errors_expected = 0;
  for (simdjson::dom::element c : root["cases"].get_array()) {
    const std::string name{std::string_view(c["template"])};
    const std::string conv_name{std::string_view(c["conversation"])};
    if (!templates.count(name))
      templates.emplace(name, chat_template::from_source(slurp(golden / "templates" / (name + ".jinja")), name));
    std::vector<chat_message> msgs;
    for (simdjson::dom::element m : root["conversations"][conv_name].get_array())
      msgs.push_back({std::string(std::string_view(m["role"])), std::string(std::string_view(m["content"])), ""});
    chat_render_options o = base;
    o.add_generation_prompt = bool(c["add_generation_prompt"]);
    simdjson::dom::object extra;
    if (c["extra"].get(extra) == simdjson::SUCCESS)
      for (auto [k, v] : extra) o.extra[std::string(k)] = std::string(std::string_view(v));
    const std::string label = name + " / " + conv_name + (o.add_generation_prompt ? " / gen" : "");
    std::string_view expected;
    if (c["rendered"].get(expected) == simdjson::SUCCESS) {
      std::string got;
      EXPECT_NO_THROW(got = templates.at(name).render(msgs, o)) << label;
      EXPECT_EQ(got, expected) << label;
    } else {
      const std::string message{std::string_view(c["error"])};
      ++errors_expected;
      try {
        templates.at(name).render(msgs, o);
        ADD_FAILURE() << label << ": expected the error \"" << message << "\"";
      } catch (const chat_template_error& e) {
        EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << label << ": " << e.what();
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 100);
  EXPECT_GT(errors_expected, 0);
}

TEST(chat_template, builtins_equal_the_published_templates) {
  // The built-ins are the same sources as the golden test data, so they render identically.
  const std::vector<chat_message> msgs = {{"system", "Sys", ""}, {"user", "Hi", ""}};
  chat_render_options o;
  o.bos_token = "<s>";
  o.eos_token = "</s>";
  for (auto [builtin, file] : {std::pair{"llama2", "llama2-chat"}, {"llama3", "llama3"}, {"zephyr", "zephyr"},
                               {"chatml", "chatml"}}) {
    const auto a = chat_template::builtin(builtin).render(msgs, o);
    const auto b = chat_template::from_source(slurp(golden / "templates" / (std::string(file) + ".jinja"))).render(msgs, o);
    EXPECT_EQ(a, b) << builtin;
  }
  EXPECT_THROW(chat_template::builtin("nope"), chat_template_error);
}

TEST(chat_template, developer_role_renders_as_system) {
  chat_render_options o;
  EXPECT_EQ(chat_template::builtin("chatml").render({{"developer", "Be terse.", ""}}, o),
            "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>assistant\n");
}

TEST(chat_template, plain_fallback_joins_contents) {
  const auto t = chat_template::builtin("plain");
  chat_render_options o;
  EXPECT_EQ(t.render({{"system", "A", ""}, {"user", "Once upon a time", ""}}, o), "A\nOnce upon a time");
}

TEST(chat_template, loads_from_tokenizer_config_or_falls_back) {
  const auto t = load_chat_template(golden / "bpe-llama3-style");
  chat_render_options o;
  o.bos_token = "<|begin_of_text|>";
  EXPECT_EQ(t.render({{"user", "Hi", ""}}, o),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  const fs::path tiny = fs::path(MOAT_FIXTURES_DIR) / "tinystories-656K-hf";
  if (!fs::exists(tiny)) GTEST_SKIP() << "fixture missing: " << tiny;
  EXPECT_EQ(load_chat_template(tiny).name(), "builtin:plain");  // tinystories ships no template
  EXPECT_EQ(load_chat_template(tiny, "chatml").name(), "builtin:chatml");
  const fs::path gguf = fs::path(MOAT_FIXTURES_DIR) / "llama2-tiny-random-gguf" / "llama-2-tiny-random.gguf";
  if (fs::exists(gguf)) {
    EXPECT_EQ(load_chat_template(gguf).name(), "builtin:plain");  // no tokenizer.chat_template
  }
}

TEST(chat_template, errors_are_exceptions_not_crashes) {
  EXPECT_THROW(chat_template::from_source("{% if x %}never closed"), chat_template_error);
  EXPECT_THROW(chat_template::from_source("{{ 'unterminated }}"), chat_template_error);
  EXPECT_THROW(chat_template::from_source("{% frobnicate %}"), chat_template_error);
  EXPECT_THROW(chat_template::from_source("{{ a b }}"), chat_template_error);
  chat_render_options o;
  EXPECT_THROW(chat_template::from_source("{{ raise_exception('no system') }}").render({}, o), chat_template_error);
  EXPECT_THROW(chat_template::from_source("{{ messages[0]['role'] }}").render({}, o), chat_template_error);
  EXPECT_THROW(chat_template::from_source("{{ 1 + 'a' }}").render({}, o), chat_template_error);
  EXPECT_THROW(chat_template::from_source("{{ 1 // 0 }}").render({}, o), chat_template_error);
  EXPECT_THROW(chat_template::from_source("{{ x | nosuchfilter }}").render({}, o), chat_template_error);
  try {
    chat_template::from_source("line one\n{{ raise_exception('boom') }}").render({}, o);
  } catch (const chat_template_error& e) {
    EXPECT_NE(std::string(e.what()).find("boom"), std::string::npos);
  }
}

TEST(chat_template, hostile_templates_fail_with_an_error) {
  chat_render_options o;
  // nesting deep enough to overflow a naive recursive parser or evaluator
  EXPECT_THROW(chat_template::from_source("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"),
               chat_template_error);
  std::string chain = "{{ 1";
  for (int i = 0; i < 5000; ++i) chain += " + 1";
  EXPECT_THROW(chat_template::from_source(chain + " }}"), chat_template_error);
  std::string ifs;
  for (int i = 0; i < 1000; ++i) ifs += "{% if true %}";
  EXPECT_THROW(chat_template::from_source(ifs), chat_template_error);
  // unbounded work and recursion
  EXPECT_THROW(chat_template::from_source("{% for i in range(2000) %}{% for j in range(2000) %}{% endfor %}{% endfor %}")
                   .render({}, o),
               chat_template_error);
  EXPECT_THROW(chat_template::from_source("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}").render({}, o),
               chat_template_error);
  EXPECT_THROW(chat_template::from_source("{{ 'a' * 1000000000000 }}").render({}, o), chat_template_error);
  EXPECT_THROW(chat_template::from_source("{% set ns = namespace(s='ab') %}{% for i in range(60) %}"
                                          "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}")
                   .render({}, o),
               chat_template_error);
  // still fine: a long but flat conversation
  std::vector<chat_message> many(2000, chat_message{"user", "hi", ""});
  EXPECT_EQ(chat_template::builtin("chatml").render(many, o).size(), 2000 * std::string("<|im_start|>user\nhi<|im_end|>\n").size() +
                                                                       std::string("<|im_start|>assistant\n").size());
}

// Mutated published templates: parsing and rendering either succeed or throw
// chat_template_error; nothing else escapes and nothing crashes (run under ASan in make test-asan).
TEST(chat_template, mutated_templates_fuzz) {
  std::mt19937 rng(2024);
  const std::string alphabet = "{}%#-+()[]'\"|.,:=~*/ abcxyz01\n";
  const std::vector<chat_message> msgs = {{"system", "S", ""}, {"user", "U", ""}, {"assistant", "A", ""}, {"user", "V", ""}};
  chat_render_options o;
  o.bos_token = "<s>";
  int rendered = 0, rejected = 0;
  for (const auto& entry : fs::directory_iterator(golden / "templates")) {
    const std::string original = slurp(entry.path());
    for (int round = 0; round < 150; ++round) {
      std::string src = original;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < edits && !src.empty(); ++k) {
        const size_t at = rng() % src.size();
        switch (rng() % 3) {
          case 0: src.erase(at, 1 + rng() % 3); break;
          case 1: src.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
          default: src[at] = alphabet[rng() % alphabet.size()];
        }
      }
      try {
        chat_template::from_source(src).render(msgs, o);
        ++rendered;
      } catch (const chat_template_error&) {
        ++rejected;
      }
    }
  }
  EXPECT_GT(rendered, 0);
  EXPECT_GT(rejected, 0);
}

}  // namespace
}  // namespace moat::engine

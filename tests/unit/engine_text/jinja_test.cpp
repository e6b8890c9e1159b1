// The Jinja subset's value semantics where they must match Python exactly (str/repr of numbers,
// json.dumps, equality across int/float/bool, floor division and modulo).
#include <gtest/gtest.h>

#include "engine/chat_template.h"
#include "engine/jinja_value.h"

namespace moat::engine {
namespace {

std::string render(const std::string& src) {
  return chat_template::from_source(src).render({}, chat_render_options{});
}

TEST(jinja, floats_print_as_python_repr) {
  using jinja::value;
  const std::pair<double, const char*> cases[] = {
      {0.1, "0.1"},       {1.0, "1.0"},       {1e15, "1000000000000000.0"}, {1e16, "1e+16"},
      {1e-4, "0.0001"},   {1e-5, "1e-05"},    {-2.5, "-2.5"},              {1.5e300, "1.5e+300"},
      {2.567e-7, "2.567e-07"}, {12345678901234567.0, "1.2345678901234568e+16"}};
  for (auto [d, text] : cases) EXPECT_EQ(value(d).to_string(), text);
}

TEST(jinja, json_matches_python_json_dumps) {
  using jinja::value;
  value v = value::dict({{"k", value("a\x7f\x01\"\\é")}, {"n", value::none()}, {"l", value::list({value(1), value(2.0)})}});
  EXPECT_EQ(v.to_json(), "{\"k\": \"a\x7f\\u0001\\\"\\\\é\", \"n\": null, \"l\": [1, 2.0]}");
  EXPECT_EQ(value::list().to_json(2), "[]");
}

TEST(jinja, tojson_takes_transformers_arguments) {
  EXPECT_EQ(render("{{ {'a': 'é😀'} | tojson }}"), "{\"a\": \"é😀\"}");
  EXPECT_EQ(render("{{ {'a': 'é😀'} | tojson(ensure_ascii=true) }}"), "{\"a\": \"\\u00e9\\ud83d\\ude00\"}");
  EXPECT_EQ(render("{{ [1] | tojson(indent=1) }}"), "[\n 1\n]");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"), "{\"a\": 2, \"b\": 1}");
}

TEST(jinja, loop_cycle) {
  EXPECT_EQ(render("{% for i in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}"), "ababa");
}

TEST(jinja, python_arithmetic_and_equality) {
  EXPECT_EQ(render("{{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 3 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' * 3 }}"),
            "-4 2 -2 8 True True aaa");
  EXPECT_EQ(render("{{ [1, 2] == [1, 2] }} {{ none == none }} {{ undefined_x == none }}"), "True True False");
  EXPECT_EQ(render("{{ 'b' > 'a' }} {{ [1, 2] < [1, 3] }} {{ 10 / 4 }}"), "True True 2.5");
}

TEST(jinja, string_escapes_as_python_reads_them) {
  EXPECT_EQ(render("{{ 'a\\u2581b\\x41\\n\\t\\'' }}"), "a\u2581bA\n\t'");
  EXPECT_EQ(render("{{ '\\U0001F600' }}"), "\U0001F600");
  EXPECT_THROW(render("{{ '\\u12' }}"), chat_template_error);
}

TEST(jinja, whitespace_control_as_transformers_configures_it) {
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before it goes.
  EXPECT_EQ(render("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  EXPECT_EQ(render("a  {{- ' x ' -}}  b"), "a x b");
  EXPECT_EQ(render("x\n  {%+ if true %}y{% endif %}"), "x\n  y");
  EXPECT_EQ(render("{# comment #}\nz\n"), "z");
}

}  // namespace
}  // namespace moat::engine

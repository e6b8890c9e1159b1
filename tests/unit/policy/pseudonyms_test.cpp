#include <gtest/gtest.h>

#include "policy/pseudonyms.h"

namespace moat::policy {
namespace {

TEST(pseudonyms, same_value_same_placeholder) {
  pseudonym_map m;
  EXPECT_EQ(m.placeholder("EMAIL", "a@b.cd"), "<EMAIL_1>");
  EXPECT_EQ(m.placeholder("EMAIL", "x@y.zz"), "<EMAIL_2>");
  EXPECT_EQ(m.placeholder("EMAIL", "a@b.cd"), "<EMAIL_1>");
  EXPECT_EQ(m.placeholder("PHONE", "+1 415 555 2671"), "<PHONE_1>");
  EXPECT_EQ(m.restore("to <EMAIL_2>, cc <EMAIL_1>; <EMAIL_3> <PHONE_1>"), "to x@y.zz, cc a@b.cd; <EMAIL_3> +1 415 555 2671");
}

TEST(pseudonyms, stream_restores_split_placeholders) {
  auto m = std::make_shared<pseudonym_map>();
  m->placeholder("EMAIL", "a@b.cd");
  for (int i = 0; i < 11; ++i) {
    std::string v = "v";
    v += std::to_string(i);
    v += "@x.io";
    m->placeholder("EMAIL", v);  // up to <EMAIL_12>
  }
  const std::string text = "Reply to <EMAIL_1> and <EMAIL_12>, not <EMAIL_99> or a < b.";
  const std::string want = m->restore(text);
  EXPECT_EQ(want, "Reply to a@b.cd and v10@x.io, not <EMAIL_99> or a < b.");
  for (size_t n = 1; n <= 4; ++n) {
    pseudonym_restorer r(m);
    std::string out;
    for (size_t i = 0; i < text.size(); i += n) out += r.push(text.substr(i, n));
    out += r.finish();
    EXPECT_EQ(out, want) << n;
  }
}

TEST(pseudonyms, holds_only_a_possible_placeholder) {
  auto m = std::make_shared<pseudonym_map>();
  m->placeholder("EMAIL", "a@b.cd");
  pseudonym_restorer r(m);
  EXPECT_EQ(r.push("x <EM"), "x ");
  EXPECT_EQ(r.push("P"), "<EMP");  // no placeholder starts with "<EMP"
  EXPECT_EQ(r.push(" <EMAIL_1"), " ");
  EXPECT_EQ(r.push(">!"), "a@b.cd!");
}

}  // namespace
}  // namespace moat::policy

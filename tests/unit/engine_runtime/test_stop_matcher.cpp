// Stop strings: found across token boundaries, never emitted, held back only while needed.
#include <gtest/gtest.h>

#include "engine/stop_matcher.h"

namespace moat::engine {
namespace {

TEST(stop_matcher, passes_text_through_without_stops) {
  stop_matcher m({});
  EXPECT_EQ(m.push("abc").text, "abc");
  EXPECT_EQ(m.push("").text, "");
  EXPECT_EQ(m.flush(), "");
}

TEST(stop_matcher, finds_a_stop_split_over_three_pushes) {
  stop_matcher m({"The end"});
  auto r = m.push("and so. Th");
  EXPECT_EQ(r.text, "and so. ");  // "Th" could start the stop
  EXPECT_FALSE(r.stopped);
  r = m.push("e en");
  EXPECT_EQ(r.text, "");
  r = m.push("d!");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(m.push("more").text, "");
  EXPECT_EQ(m.flush(), "");
}

TEST(stop_matcher, releases_held_text_when_it_stops_matching) {
  stop_matcher m({"\n\n"});
  EXPECT_EQ(m.push("line\n").text, "line");
  auto r = m.push("next");
  EXPECT_EQ(r.text, "\nnext");
  EXPECT_FALSE(r.stopped);
}

TEST(stop_matcher, text_before_the_stop_in_the_same_push_is_released) {
  stop_matcher m({"STOP"});
  auto r = m.push("abcSTOPdef");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "abc");
}

TEST(stop_matcher, earliest_of_several_stops_wins) {
  stop_matcher m({"yz", "b"});
  auto r = m.push("axyzb");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "ax");
}

TEST(stop_matcher, holds_the_longest_possible_prefix) {
  stop_matcher m({"aab"});
  EXPECT_EQ(m.push("xaa").text, "x");
  EXPECT_EQ(m.push("a").text, "a");  // "aaa": only "aa" can still become "aab"
  auto r = m.push("b");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "");
}

TEST(stop_matcher, flush_releases_a_partial_match_at_the_end) {
  stop_matcher m({"the end"});
  EXPECT_EQ(m.push("so the e").text, "so ");
  EXPECT_EQ(m.flush(), "the e");
}

TEST(stop_matcher, multibyte_stops_cut_on_character_boundaries) {
  stop_matcher m({"\xC3\xA9t\xC3\xA9"});  // "été"
  auto r = m.push("caf\xC3\xA9");
  EXPECT_EQ(r.text, "caf");
  r = m.push("s \xC3\xA9t\xC3\xA9");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "\xC3\xA9s ");
}

TEST(stop_matcher, empty_stop_strings_are_ignored) {
  stop_matcher m({""});
  auto r = m.push("abc");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.text, "abc");
}

}  // namespace
}  // namespace moat::engine

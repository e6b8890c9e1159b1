#include <gtest/gtest.h>

#include "policy/validators.h"

namespace moat::policy {
namespace {

TEST(validators, luhn) {
  EXPECT_TRUE(luhn_valid("4111 1111 1111 1111"));
  EXPECT_TRUE(luhn_valid("5500-0000-0000-0004"));
  EXPECT_TRUE(luhn_valid("378282246310005"));  // Amex, 15 digits
  EXPECT_FALSE(luhn_valid("4111 1111 1111 1112"));
  EXPECT_FALSE(luhn_valid("0000 0000 0000 0000"));  // passes the sum, not a card
  EXPECT_FALSE(luhn_valid("12345"));
}

TEST(validators, iban) {
  EXPECT_TRUE(iban_valid("DE89 3704 0044 0532 0130 00"));
  EXPECT_TRUE(iban_valid("GB82WEST12345698765432"));
  EXPECT_TRUE(iban_valid("fr1420041010050500013m02606"));
  EXPECT_FALSE(iban_valid("DE89 3704 0044 0532 0130 01"));
  EXPECT_FALSE(iban_valid("GB82WEST1234569876543"));
  EXPECT_FALSE(iban_valid("XX"));
}

TEST(validators, us_ssn) {
  EXPECT_TRUE(us_ssn_valid("536-22-1234"));
  EXPECT_FALSE(us_ssn_valid("000-22-1234"));
  EXPECT_FALSE(us_ssn_valid("666-22-1234"));
  EXPECT_FALSE(us_ssn_valid("912-22-1234"));
  EXPECT_FALSE(us_ssn_valid("536-00-1234"));
  EXPECT_FALSE(us_ssn_valid("536-22-0000"));
  EXPECT_FALSE(us_ssn_valid("078-05-1120"));
}

TEST(validators, ip_addresses) {
  EXPECT_TRUE(ipv4_valid("192.168.1.20"));
  EXPECT_TRUE(ipv4_valid("8.8.8.8"));
  EXPECT_FALSE(ipv4_valid("256.1.1.1"));
  EXPECT_FALSE(ipv4_valid("01.2.3.4"));
  EXPECT_FALSE(ipv4_valid("1.2.3"));
  EXPECT_TRUE(ipv6_valid("2001:db8::8a2e:370:7334"));
  EXPECT_TRUE(ipv6_valid("2001:0db8:85a3:0000:0000:8a2e:0370:7334"));
  EXPECT_TRUE(ipv6_valid("::1"));
  EXPECT_TRUE(ipv6_valid("::ffff:192.0.2.128"));
  EXPECT_FALSE(ipv6_valid("2001:db8::85a3::7334"));
  EXPECT_FALSE(ipv6_valid("12:34"));
  EXPECT_FALSE(ipv6_valid("1:2:3:4:5:6:7:8:9"));
}

TEST(validators, phones_dates_entropy) {
  EXPECT_TRUE(nanp_phone_valid("(415) 555-2671"));
  EXPECT_TRUE(nanp_phone_valid("+1 212 736 5000"));
  EXPECT_FALSE(nanp_phone_valid("(011) 555-2671"));
  EXPECT_FALSE(nanp_phone_valid("415-155-2671"));
  EXPECT_FALSE(nanp_phone_valid("(800) 555-0199"));
  EXPECT_TRUE(date_valid("born on 1984-02-29"));
  EXPECT_FALSE(date_valid("born on 1985-02-29"));
  EXPECT_TRUE(date_valid("DOB: 31.12.1970"));
  EXPECT_TRUE(date_valid("dob 12/31/1970"));
  EXPECT_FALSE(date_valid("dob 13/13/1970"));
  EXPECT_TRUE(high_entropy("api_key = \"q8Zr2LxV0pT4mN7sKd1WfY3h\""));
  EXPECT_FALSE(high_entropy("password=aaaaaaaaaaaaaaaaaaaa1"));
  EXPECT_FALSE(high_entropy("token: short1"));
}

TEST(validators, lookup_by_name) {
  for (const auto& name : validator_names()) EXPECT_NE(find_validator(name), nullptr) << name;
  EXPECT_EQ(find_validator("nope"), nullptr);
}

}  // namespace
}  // namespace moat::policy

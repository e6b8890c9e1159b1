// Validators confirm a pattern match before it counts: a 16-digit number is a card only if its
// Luhn checksum holds, an IBAN only if mod-97 gives 1. A rule names one with `validate: NAME`.
//
//   auto* v = moat::policy::find_validator("luhn");
//   if (v && !v("4111 1111 1111 1112")) { /* not a card: leave it alone */ }
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moat::policy {

using validator_fn = bool (*)(std::string_view match);

bool luhn_valid(std::string_view text);     // digits with optional spaces/dashes, 12..19 digits
bool iban_valid(std::string_view text);     // country code, check digits, BBAN; spaces allowed
bool us_ssn_valid(std::string_view text);   // area not 000/666/9xx, group not 00, serial not 0000
bool ipv4_valid(std::string_view text);     // four octets 0..255, no leading zeros beyond "0"
bool ipv6_valid(std::string_view text);     // RFC 4291 text forms incl. "::" and embedded IPv4
bool nanp_phone_valid(std::string_view text);  // area/exchange codes start 2-9, not N11 area
bool intl_phone_valid(std::string_view text);  // E.164: 8..15 digits in all
bool high_entropy(std::string_view text);   // the value after key=/token: looks random (>= 3.5 bits/char)
bool date_valid(std::string_view text);     // a real calendar date in Y-M-D, M/D/Y or D.M.Y form

// nullptr when `name` is unknown. Names: luhn, iban, us_ssn, ipv4, ipv6, nanp_phone, intl_phone, entropy,
// date.
validator_fn find_validator(std::string_view name);
std::vector<std::string> validator_names();

}  // namespace moat::policy

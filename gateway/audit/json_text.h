// JSON string escaping for the audit line: control characters escaped, invalid UTF-8 bytes
// written as U+FFFD so every line stays valid JSON whatever a payload holds.
#pragma once

#include <string>
#include <string_view>

namespace moat::audit {

void append_json_string(std::string& out, std::string_view s);

}  // namespace moat::audit

// libFuzzer: the config parser and the auth section. A config must load or throw a config
// error (what() naming file and line), never crash; other exceptions are bugs except
// yaml-cpp's own for malformed YAML.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "auth/auth_config.h"
#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto cfg = moat::config::parse_config(text, "/nonexistent/fuzz.yaml");
    (void)moat::auth::parse_auth_config(cfg.auth, cfg.file);
  } catch (const moat::config::config_error&) {
  } catch (const moat::auth::auth_config_error&) {
  } catch (const YAML::Exception&) {
  }
  return 0;
}

// A backend plugin library: dlopen'ed once per file, its function table checked and copied.
//
//   auto lib = moat::host::load_plugin("/opt/moat/lib/moat/libmoat_echo.so");  // throws
//   const moat_backend_api& api = lib->api();   // slots past the plugin's struct_size are NULL
#pragma once

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "moat/backend.h"

namespace moat::host {

// Anything that stops a model from being served: a missing or wrong plugin, a failed create().
class host_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class plugin_library {
 public:
  plugin_library(std::filesystem::path path, void* handle, const moat_backend_api& api);
  // The library stays mapped for the life of the process: a plugin may leave static state
  // or threads behind whose code must not vanish under them.
  ~plugin_library() = default;

  const std::filesystem::path& path() const { return path_; }
  const moat_backend_api& api() const { return api_; }
  std::string name() const;

 private:
  std::filesystem::path path_;
  void* handle_;
  moat_backend_api api_;  // our copy, zero beyond what the plugin declared
};

// Opens `path`, finds moat_backend_entry, refuses a wrong ABI version, a too-small table or a
// missing required slot with a host_error naming the file and both versions or sizes.
std::shared_ptr<plugin_library> load_plugin(const std::filesystem::path& path);

// Where a backend's plugin lives by default: <dir of the executable>/../lib/moat/libmoat_<name>.so
std::filesystem::path default_plugin_path(const std::filesystem::path& executable_dir,
                                          const std::string& backend);

// The running executable's directory (from /proc/self/exe).
std::filesystem::path executable_dir();

const char* status_name(moat_status status);

}  // namespace moat::host

#include "host/plugin.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstddef>
#include <cstring>

namespace moat::host {

namespace {

// The table up to and including `cancel` is what every plugin must provide.
constexpr size_t min_api_size = offsetof(moat_backend_api, cancel) + sizeof(void*);

}  // namespace

plugin_library::plugin_library(std::filesystem::path path, void* handle, const moat_backend_api& api)
    : path_(std::move(path)), handle_(handle), api_(api) {}

std::string plugin_library::name() const {
  if (api_.name.data == nullptr) return "";
  return std::string(api_.name.data, api_.name.size);
}

std::shared_ptr<plugin_library> load_plugin(const std::filesystem::path& path) {
  const std::string file = path.string();
  if (!std::filesystem::exists(path)) throw host_error(fmt::format("{}: no such plugin file", file));
  // RTLD_LOCAL: two plugins never see each other's symbols.
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    throw host_error(fmt::format("{}: cannot load the plugin: {}", file, why ? why : "unknown error"));
  }
  dlerror();
  void* sym = dlsym(handle, MOAT_BACKEND_ENTRY_SYMBOL);
  if (sym == nullptr) {
    throw host_error(fmt::format("{}: no {} symbol; is this a moat backend plugin?", file,
                                 MOAT_BACKEND_ENTRY_SYMBOL));
  }
  auto entry = reinterpret_cast<moat_backend_entry_fn>(sym);
  const moat_backend_api* table = entry();
  if (table == nullptr) throw host_error(fmt::format("{}: {} returned NULL", file, MOAT_BACKEND_ENTRY_SYMBOL));
  if (table->struct_size < offsetof(moat_backend_api, abi_version) + sizeof(uint32_t)) {
    throw host_error(fmt::format("{}: function table of {} bytes is too small to be a moat plugin",
                                 file, table->struct_size));
  }
  if (table->abi_version != MOAT_BACKEND_ABI_VERSION) {
    throw host_error(fmt::format(
        "{}: plugin ABI version {} does not match this moat's ABI version {}; rebuild the plugin "
        "against this moat's moat/backend.h",
        file, table->abi_version, MOAT_BACKEND_ABI_VERSION));
  }
  if (table->struct_size < min_api_size) {
    throw host_error(fmt::format("{}: function table is {} bytes; ABI version {} needs at least {}",
                                 file, table->struct_size, MOAT_BACKEND_ABI_VERSION, min_api_size));
  }
  // Copy what the plugin declared; slots it does not know stay NULL (optional by construction):
  // an older plugin's smaller struct_size leaves every slot appended since (e.g. `metrics`)
  // NULL, so callers test the slot, never the size.
  moat_backend_api api{};
  std::memcpy(&api, table, std::min<size_t>(table->struct_size, sizeof api));
  api.struct_size = sizeof api;
  // A size that ends inside an optional slot (a plugin miscounting) would leave half a
  // pointer: such a slot counts as absent.
  auto covered = [&](size_t offset) { return table->struct_size >= offset + sizeof(void*); };
  if (!covered(offsetof(moat_backend_api, tokenize))) api.tokenize = nullptr;
  if (!covered(offsetof(moat_backend_api, detokenize))) api.detokenize = nullptr;
  if (!covered(offsetof(moat_backend_api, stats))) api.stats = nullptr;
  if (!covered(offsetof(moat_backend_api, metrics))) api.metrics = nullptr;
  const struct {
    const char* name;
    bool present;
  } required[] = {{"create", api.create != nullptr},
                  {"destroy", api.destroy != nullptr},
                  {"capabilities", api.capabilities != nullptr},
                  {"submit", api.submit != nullptr},
                  {"cancel", api.cancel != nullptr}};
  for (const auto& r : required) {
    if (!r.present) throw host_error(fmt::format("{}: required function '{}' is NULL", file, r.name));
  }
  return std::make_shared<plugin_library>(path, handle, api);
}

std::filesystem::path default_plugin_path(const std::filesystem::path& executable_dir,
                                          const std::string& backend) {
  return (executable_dir / ".." / "lib" / "moat" / ("libmoat_" + backend + ".so")).lexically_normal();
}

std::filesystem::path executable_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return std::filesystem::current_path();
  return exe.parent_path();
}

const char* status_name(moat_status status) {
  switch (status) {
    case MOAT_OK: return "MOAT_OK";
    case MOAT_ERR_INVALID_ARGUMENT: return "MOAT_ERR_INVALID_ARGUMENT";
    case MOAT_ERR_UNSUPPORTED: return "MOAT_ERR_UNSUPPORTED";
    case MOAT_ERR_CONTEXT_LENGTH: return "MOAT_ERR_CONTEXT_LENGTH";
    case MOAT_ERR_NOT_FOUND: return "MOAT_ERR_NOT_FOUND";
    case MOAT_ERR_BUSY: return "MOAT_ERR_BUSY";
    case MOAT_ERR_INTERNAL: return "MOAT_ERR_INTERNAL";
    case MOAT_ERR_UPSTREAM: return "MOAT_ERR_UPSTREAM";
    case MOAT_ERR_UNAVAILABLE: return "MOAT_ERR_UNAVAILABLE";
    case MOAT_ERR_TIMEOUT: return "MOAT_ERR_TIMEOUT";
    case MOAT_ERR_CANCELLED: return "MOAT_ERR_CANCELLED";
    case MOAT_ERR_IO: return "MOAT_ERR_IO";
  }
  return "unknown status";
}

}  // namespace moat::host

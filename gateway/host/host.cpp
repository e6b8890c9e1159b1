#include "host/host.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <map>

namespace moat::host {

plugin_host::plugin_host(const config::config& cfg, std::filesystem::path executable_dir,
                         metrics::registry& metrics)
    : cfg_(cfg), executable_dir_(std::move(executable_dir)), metrics_(metrics) {}

plugin_host::~plugin_host() { shutdown(); }

void plugin_host::load_all() {
  std::map<std::filesystem::path, std::shared_ptr<plugin_library>> libraries;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(cfg_.server.request_timeout_s * 1000));
  for (const auto& model : cfg_.models) {
    const auto path = model.plugin.empty() ? default_plugin_path(executable_dir_, model.backend) : model.plugin;
    auto& lib = libraries[path];
    if (!lib) {
      try {
        lib = load_plugin(path);
      } catch (const host_error& e) {
        throw host_error(fmt::format("{}: model '{}' (backend {}): {}", model.where, model.name,
                                     model.backend, e.what()));
      }
    }
    if (model.plugin.empty() && lib->name() != model.backend) {
      spdlog::warn("{}: plugin {} calls itself '{}', not '{}'", model.where, path.string(), lib->name(),
                   model.backend);
    }
    const auto started = std::chrono::steady_clock::now();
    auto b = std::make_unique<backend>(model, lib, cfg_.dir, metrics_, timeout);
    b->create();
    spdlog::info("model '{}' loaded by {} in {:.3f} s", model.name, path.string(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    backends_.push_back(std::move(b));
  }
  loaded_.store(true, std::memory_order_release);
}

backend* plugin_host::find(std::string_view model) const {
  if (!loaded()) return nullptr;
  for (const auto& b : backends_) {
    if (b->name() == model) return b.get();
  }
  return nullptr;
}

std::vector<backend*> plugin_host::backends() const {
  std::vector<backend*> out;
  if (!loaded()) return out;
  for (const auto& b : backends_) out.push_back(b.get());
  return out;
}

std::vector<metrics::model_live> plugin_host::live() const {
  std::vector<metrics::model_live> out;
  if (!loaded()) return out;
  for (const auto& b : backends_) out.push_back(b->live());
  return out;
}

void plugin_host::shutdown() {
  loaded_.store(false, std::memory_order_release);
  // Reverse order of creation.
  while (!backends_.empty()) backends_.pop_back();
}

}  // namespace moat::host

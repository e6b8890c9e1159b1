// The gateway's configuration: one YAML file parsed once at start into an immutable struct.
// Every error names the file, the line and the key, e.g.
//   config.yaml:12: models[1].backend: expected a plugin name ([a-z0-9_]+), got "Foo Bar"
//
//   const moat::config::config cfg = moat::config::load_config("config/moat.yaml");  // throws
//   for (const auto& m : cfg.models) std::printf("%s -> %s\n", m.name.c_str(), m.backend.c_str());
//
// The sections other engineers own (auth, policies, audit) are kept as raw YAML nodes with the
// file's directory, so their modules validate them with the same error style.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace moat::config {

// Thrown for anything wrong in the file; what() is the full "file:line: key: message" line.
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct tls_config {
  std::filesystem::path cert;       // resolved against the config file's directory
  std::filesystem::path key;
  std::filesystem::path client_ca;  // empty: no client certificates asked for
  bool require_client_cert = false;
};

struct server_config {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  unsigned threads = 0;                     // 0: one I/O thread per core
  uint64_t max_body_bytes = 8ull << 20;     // 413 above
  uint32_t max_header_bytes = 16u << 10;    // 431 above
  uint32_t max_headers = 100;               // header fields in one request, 431 above
  double read_timeout_s = 30;               // a started request must arrive within this
  double idle_timeout_s = 60;               // a keep-alive connection may idle this long
  double request_timeout_s = 600;           // a backend must finish within this (504 after)
  double drain_timeout_s = 30;              // on SIGTERM, in-flight requests get this long
  uint32_t max_connections = 10000;         // further connections are closed at accept
  uint32_t max_connections_per_ip = 1024;   // per client address, closed at accept; 0: no cap
  std::optional<tls_config> tls;            // parsed and kept; served by the TLS module
};

struct model_config {
  std::string name;                // what clients send as "model"
  std::string backend;             // plugin name: libmoat_<backend>.so
  std::filesystem::path plugin;    // explicit plugin path (resolved), empty: by backend name
  uint32_t max_queue = 1024;       // host bound on this model's requests in flight (429 above)
  std::string options_json = "{}";  // the `options:` map as a JSON object, for the plugin
  std::string where;               // "config.yaml:12: models[1]" for later error messages
};

struct logging_config {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
};

struct config {
  std::filesystem::path file;  // as given
  std::filesystem::path dir;   // its directory: relative paths resolve against it
  server_config server;
  std::vector<model_config> models;
  logging_config logging;
  YAML::Node auth;      // raw: validated by the auth module
  YAML::Node policies;  // raw: validated by the policy module
  YAML::Node audit;     // raw: validated by the audit module
};

// Reads and validates the file. Throws config_error.
config load_config(const std::filesystem::path& file);
// Same, from text (tests); `file` is only used in messages and to resolve relative paths.
config parse_config(std::string_view yaml_text, const std::filesystem::path& file);

// "8MiB", "16KiB", "1MB", "1048576", "512k" -> bytes. KiB/MiB/GiB and k/K/M/G are powers of
// 1024, kB/MB/GB powers of 1000; a bare number is bytes. nullopt when malformed or overflowing.
std::optional<uint64_t> parse_size(std::string_view text);

// "HOST:PORT" or "[v6]:PORT" into host and port. nullopt when malformed.
struct listen_address {
  std::string host;
  uint16_t port = 0;
};
std::optional<listen_address> parse_listen(std::string_view text);

// A YAML map as a JSON object (scalars typed as YAML 1.2 core would read them; quoted scalars
// stay strings). Used for `options:`.
std::string yaml_to_json(const YAML::Node& node);

}  // namespace moat::config

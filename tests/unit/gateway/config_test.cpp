// Config loading: defaults, sizes, listen addresses, options as JSON, and errors that name the
// file, the line and the key.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace {

using moat::config::config_error;
using moat::config::parse_config;

// The message of the config_error that `yaml` raises, or "" when it loads.
std::string error_of(const std::string& yaml) {
  try {
    parse_config(yaml, "/etc/moat/config.yaml");
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

TEST(config, defaults_and_minimal_model) {
  auto cfg = parse_config("models:\n  - name: echo\n    backend: echo\n", "/etc/moat/config.yaml");
  EXPECT_EQ(cfg.server.host, "127.0.0.1");
  EXPECT_EQ(cfg.server.port, 8080);
  EXPECT_EQ(cfg.server.threads, 0u);
  EXPECT_EQ(cfg.server.max_body_bytes, 8u << 20);
  EXPECT_EQ(cfg.server.max_header_bytes, 16u << 10);
  EXPECT_EQ(cfg.server.max_headers, 100u);
  EXPECT_DOUBLE_EQ(cfg.server.read_timeout_s, 30);
  EXPECT_DOUBLE_EQ(cfg.server.idle_timeout_s, 60);
  EXPECT_DOUBLE_EQ(cfg.server.request_timeout_s, 600);
  EXPECT_DOUBLE_EQ(cfg.server.drain_timeout_s, 30);
  EXPECT_EQ(cfg.server.max_connections, 10000u);
  EXPECT_FALSE(cfg.server.tls.has_value());
  ASSERT_EQ(cfg.models.size(), 1u);
  EXPECT_EQ(cfg.models[0].name, "echo");
  EXPECT_EQ(cfg.models[0].backend, "echo");
  EXPECT_EQ(cfg.models[0].max_queue, 1024u);
  EXPECT_EQ(cfg.models[0].options_json, "{}");
  EXPECT_TRUE(cfg.models[0].plugin.empty());
  EXPECT_EQ(cfg.logging.level, "info");
  EXPECT_EQ(cfg.dir, "/etc/moat");
}

TEST(config, full_server_section) {
  const char* yaml = R"(
server:
  listen: 0.0.0.0:9000
  threads: 4
  max_body_bytes: 1MiB
  max_header_bytes: 8KiB
  max_headers: 40
  read_timeout_s: 5
  idle_timeout_s: 2.5
  request_timeout_s: 10
  drain_timeout_s: 3
  max_connections: 50
  tls: { cert: certs/server.pem, key: /abs/key.pem, client_ca: ca.pem, require_client_cert: true }
auth: { api_keys: [ { name: team-a, sha256: abc } ] }
models:
  - name: m1
    backend: cpu
    plugin: ../lib/libx.so
    max_queue: 7
    options: { path: "007", n: 3, f: 0.5, on: true, list: [1, two], none: ~ }
policies: [ { path: policies/pii.lua } ]
audit: { path: audit.jsonl }
logging: { level: debug }
)";
  auto cfg = parse_config(yaml, "/etc/moat/config.yaml");
  EXPECT_EQ(cfg.server.host, "0.0.0.0");
  EXPECT_EQ(cfg.server.port, 9000);
  EXPECT_EQ(cfg.server.threads, 4u);
  EXPECT_EQ(cfg.server.max_body_bytes, 1u << 20);
  EXPECT_EQ(cfg.server.max_header_bytes, 8u << 10);
  EXPECT_EQ(cfg.server.max_headers, 40u);
  EXPECT_DOUBLE_EQ(cfg.server.idle_timeout_s, 2.5);
  EXPECT_EQ(cfg.server.max_connections, 50u);
  ASSERT_TRUE(cfg.server.tls.has_value());
  EXPECT_EQ(cfg.server.tls->cert, "/etc/moat/certs/server.pem");
  EXPECT_EQ(cfg.server.tls->key, "/abs/key.pem");
  EXPECT_EQ(cfg.server.tls->client_ca, "/etc/moat/ca.pem");
  EXPECT_TRUE(cfg.server.tls->require_client_cert);
  EXPECT_EQ(cfg.models[0].plugin, "/etc/lib/libx.so");
  EXPECT_EQ(cfg.models[0].max_queue, 7u);
  EXPECT_EQ(cfg.models[0].options_json,
            R"({"path":"007","n":3,"f":0.5,"on":true,"list":[1,"two"],"none":null})");
  EXPECT_EQ(cfg.models[0].where, "/etc/moat/config.yaml:16: models[0]");
  EXPECT_TRUE(cfg.auth["api_keys"].IsSequence());
  EXPECT_TRUE(cfg.policies.IsSequence());
  EXPECT_EQ(cfg.audit["path"].as<std::string>(), "audit.jsonl");
  EXPECT_EQ(cfg.logging.level, "debug");
}

TEST(config, errors_name_file_line_and_key) {
  EXPECT_EQ(error_of("models:\n  - name: a\n    backend: echo\n  - name: b\n    backend: Not A Name\n"),
            "/etc/moat/config.yaml:5: models[1].backend: unknown backend \"Not A Name\" "
            "(a plugin name is [a-z0-9_]+)");
  EXPECT_EQ(error_of("server:\n  listen: nowhere\nmodels: [ {name: a, backend: echo} ]\n"),
            "/etc/moat/config.yaml:2: server.listen: expected HOST:PORT, got \"nowhere\"");
  EXPECT_EQ(error_of("server:\n  max_body_bytes: 8 parsecs\nmodels: [ {name: a, backend: echo} ]\n"),
            "/etc/moat/config.yaml:2: server.max_body_bytes: expected a size such as 1048576, "
            "16KiB or 8MiB, got \"8 parsecs\"");
  EXPECT_NE(error_of("models: [ {name: a, backend: echo} ]\nsurprise: 1\n")
                .find("config.yaml:2: surprise: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("server:\n  threds: 2\nmodels: [ {name: a, backend: echo} ]\n")
                .find("config.yaml:2: server.threds: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("models:\n  - name: a\n    backend: echo\n  - name: a\n    backend: echo\n")
                .find("config.yaml:4: models[1].name: duplicate model name"),
            std::string::npos);
  EXPECT_NE(error_of("models:\n  - name: a\n").find("config.yaml:2: models[0].backend: required"),
            std::string::npos);
  EXPECT_NE(error_of("server: {}\n").find("models: required"), std::string::npos);
  EXPECT_NE(error_of("models: []\n").find("models: at least one model"), std::string::npos);
  EXPECT_NE(error_of("models:\n  - name: a\n    backend: echo\n    max_queue: -3\n")
                .find("config.yaml:4: models[0].max_queue: expected a whole number"),
            std::string::npos);
  EXPECT_NE(error_of("server: { read_timeout_s: 0 }\nmodels: [ {name: a, backend: echo} ]\n")
                .find("server.read_timeout_s: expected a number of seconds > 0"),
            std::string::npos);
  EXPECT_NE(error_of("logging: { level: loud }\nmodels: [ {name: a, backend: echo} ]\n")
                .find("logging.level: unknown level"),
            std::string::npos);
  EXPECT_NE(error_of("server: { max_headers: 0 }\nmodels: [ {name: a, backend: echo} ]\n")
                .find("server.max_headers"),
            std::string::npos);
  EXPECT_NE(error_of("server: { tls: { key: k.pem } }\nmodels: [ {name: a, backend: echo} ]\n")
                .find("server.tls.cert: required"),
            std::string::npos);
  // A YAML syntax error still names the file and the line.
  EXPECT_NE(error_of("models:\n  - name: [a\n").find("/etc/moat/config.yaml:"), std::string::npos);
}

TEST(config, missing_file_is_a_clear_error) {
  try {
    moat::config::load_config("/nonexistent/moat.yaml");
    FAIL() << "expected a config_error";
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/moat.yaml: cannot open the config file");
  }
}

TEST(config, shipped_configs_load) {
  for (const char* name : {"config/echo.yaml", "config/moat.yaml"}) {
    const auto path = std::filesystem::path(MOAT_SOURCE_DIR) / name;
    if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is not in this tree";
    EXPECT_NO_THROW(moat::config::load_config(path)) << name;
  }
}

TEST(size, parses_units) {
  using moat::config::parse_size;
  EXPECT_EQ(parse_size("1048576"), 1048576u);
  EXPECT_EQ(parse_size("8MiB"), 8u << 20);
  EXPECT_EQ(parse_size("8 MiB"), 8u << 20);
  EXPECT_EQ(parse_size("16KiB"), 16u << 10);
  EXPECT_EQ(parse_size("16kib"), 16u << 10);
  EXPECT_EQ(parse_size("512k"), 512u << 10);
  EXPECT_EQ(parse_size("1MB"), 1000000u);
  EXPECT_EQ(parse_size("2GiB"), 2ull << 30);
  EXPECT_EQ(parse_size("100B"), 100u);
  EXPECT_FALSE(parse_size(""));
  EXPECT_FALSE(parse_size("MiB"));
  EXPECT_FALSE(parse_size("-1"));
  EXPECT_FALSE(parse_size("1.5MiB"));
  EXPECT_FALSE(parse_size("8 parsecs"));
  EXPECT_FALSE(parse_size("99999999999999999999"));
  EXPECT_FALSE(parse_size("999999999999TiB"));
}

TEST(listen, parses_host_and_port) {
  using moat::config::parse_listen;
  auto a = parse_listen("127.0.0.1:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  auto b = parse_listen("[::1]:0");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 0);
  EXPECT_TRUE(parse_listen("localhost:1"));
  EXPECT_FALSE(parse_listen("127.0.0.1"));
  EXPECT_FALSE(parse_listen(":80"));
  EXPECT_FALSE(parse_listen("host:"));
  EXPECT_FALSE(parse_listen("host:65536"));
  EXPECT_FALSE(parse_listen("host:8o"));
  EXPECT_FALSE(parse_listen("::1:80"));
}

}  // namespace

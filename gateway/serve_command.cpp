// `moat serve --config FILE [--listen HOST:PORT]`: loads the config, starts the HTTP server
// (health 503), creates every model's backend off the I/O threads, then prints
// `moat: listening on HOST:PORT` on stdout and serves until SIGTERM/SIGINT, which drains:
// stop accepting, /health 503, in-flight requests finish within drain_timeout_s, exit 0.
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include "api/api.h"
#include "api/common.h"
#include "audit/audit_log.h"
#include "auth/auth_config.h"
#include "auth/edge_guard.h"
#include "auth/key_store.h"
#include "cli/commands.h"
#include "cli/version.h"
#include "config/config.h"
#include "host/host.h"
#include "http/server.h"
#include "metrics/registry.h"
#include "policy/policy_manager.h"
#include "tls/tls_context.h"

namespace moat::cli {

namespace {

namespace po = boost::program_options;

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("moat");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::flush_on(spdlog::level::warn);
}

std::string host_port(const config::listen_address& a) {
  if (a.host.find(':') != std::string::npos) return "[" + a.host + "]:" + std::to_string(a.port);
  return a.host + ":" + std::to_string(a.port);
}

}  // namespace

int serve_command(int argc, char** argv) {
  po::options_description options("usage: moat serve --config FILE [--listen HOST:PORT]");
  options.add_options()("help,h", "show this help")(
      "config,c", po::value<std::string>(), "the YAML config file (see docs/configuration.md)")(
      "listen,l", po::value<std::string>(), "HOST:PORT to listen on, overriding server.listen (port 0: any)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "moat serve: %s\n\n", e.what());
    std::cerr << options << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  if (!vm.count("config")) {
    std::fprintf(stderr, "moat serve: --config FILE is required\n\n");
    std::cerr << options << "\n";
    return 2;
  }

  config::config cfg;
  try {
    cfg = config::load_config(vm["config"].as<std::string>());
  } catch (const config::config_error& e) {
    std::fprintf(stderr, "moat serve: %s\n", e.what());
    return 2;
  }
  if (vm.count("listen")) {
    auto addr = config::parse_listen(vm["listen"].as<std::string>());
    if (!addr) {
      std::fprintf(stderr, "moat serve: --listen: expected HOST:PORT, got '%s'\n",
                   vm["listen"].as<std::string>().c_str());
      return 2;
    }
    cfg.server.host = addr->host;
    cfg.server.port = addr->port;
  }
  setup_logging(cfg.logging.level);
  // Before anything logs a request: keys and Authorization values never reach the log.
  auth::install_log_scrubber(*spdlog::default_logger());
  std::unique_ptr<auth::key_store> keys;
  try {
    keys = std::make_unique<auth::key_store>(auth::parse_auth_config(cfg.auth, cfg.file));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moat serve: %s\n", e.what());
    return 2;
  }
  std::unique_ptr<tls::server_context_holder> tls_holder;
  if (cfg.server.tls) {
    try {
      tls_holder = std::make_unique<tls::server_context_holder>(tls::server_options{
          cfg.server.tls->cert.string(), cfg.server.tls->key.string(), cfg.server.tls->client_ca.string(),
          cfg.server.tls->require_client_cert});
    } catch (const std::exception& e) {
      std::fprintf(stderr, "moat serve: server.tls: %s\n", e.what());
      return 2;
    }
  }
  std::signal(SIGPIPE, SIG_IGN);

  // Policies and the audit trail, before anything serves. Declared before the host and the
  // server: in-flight requests write their audit lines while those shut down.
  std::unique_ptr<policy::policy_manager> policies;
  std::unique_ptr<audit::audit_log> audit_trail;
  try {
    if (cfg.policies && !cfg.policies.IsNull()) {
      policies = policy::policy_manager::from_config_file(vm["config"].as<std::string>());
      policy::policy_manager::install_sighup_handler();  // reload on SIGHUP, and on file changes:
      policies->start_watching();
    }
    if (cfg.audit && !cfg.audit.IsNull()) {
      audit_trail = std::make_unique<audit::audit_log>(audit::parse_audit_config(cfg.audit, cfg.dir.string()));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moat serve: %s\n", e.what());
    return 2;
  }

  std::vector<std::string> names;
  for (const auto& m : cfg.models) names.push_back(m.name);
  metrics::registry registry(names, version, commit);
  // Declared before the server: backends are destroyed after the I/O threads stop and before
  // the io_context goes (see plugin_host::shutdown).
  host::plugin_host plugins(cfg, host::executable_dir(), registry);
  http::server* server_ptr = nullptr;
  api::api_context ctx{plugins, registry, [&server_ptr] { return server_ptr->state(); }};
  ctx.system_fingerprint = std::string("fp_moat_") + version;
  ctx.policies = policies.get();
  ctx.audit = audit_trail.get();
  ctx.keys = keys.get();
  // Who is asking, for the policies (ctx.key, ctx.client) and the audit line.
  ctx.identify = [](const http::request& req, policy::request_context& who) {
    if (const auto* c = api::caller_of(req)) who.key_name = c->key_name;
    if (req.peer && req.peer->cert_verified) who.client_subject = req.peer->subject;
  };
  api::route_table routes(ctx);
  http::server server(cfg.server, routes, registry);
  if (tls_holder) server.use_tls(*tls_holder);
  server_ptr = &server;

  config::listen_address bound;
  try {
    bound = server.listen(cfg.server.host, cfg.server.port);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }

  boost::asio::signal_set signals(server.io(), SIGINT, SIGTERM);
  std::function<void(const boost::system::error_code&, int)> on_signal;
  on_signal = [&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (server.state() == http::lifecycle::draining) {
      spdlog::warn("second signal {}: stopping now", sig);
      server.stop();
      return;
    }
    spdlog::info("signal {}: draining (up to {} s for {} request(s) in flight)", sig, cfg.server.drain_timeout_s,
                 server.requests_in_flight());
    server.drain(std::chrono::milliseconds(static_cast<int64_t>(cfg.server.drain_timeout_s * 1000)),
                 [&server] { server.stop(); });
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);

  // SIGHUP: re-read keys_file and the policies (this set replaces the policy manager's own
  // handler, so it reloads them too). A bad file keeps what is in force.
  boost::asio::signal_set hup(server.io(), SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_hup;
  on_hup = [&](const boost::system::error_code& ec, int) {
    if (ec) return;
    if (keys->enabled()) {
      const std::string why = keys->reload();
      if (why.empty()) spdlog::info("SIGHUP: {} API key(s) in force", keys->key_count());
      else spdlog::error("SIGHUP: keys not reloaded: {}", why);
    }
    if (tls_holder) {
      const std::string why = tls_holder->reload();
      if (why.empty()) spdlog::info("SIGHUP: TLS certificate and key reloaded");
      else spdlog::error("SIGHUP: TLS not reloaded: {}", why);
    }
    if (policies) policies->reload();
    hup.async_wait(on_hup);
  };
  hup.async_wait(on_hup);

  const unsigned threads = cfg.server.threads ? cfg.server.threads : std::max(1u, std::thread::hardware_concurrency());
  std::thread io([&] { server.run(threads); });
  spdlog::info("moat {} ({}) on {} with {} I/O thread(s); loading {} model(s)", version, commit, host_port(bound),
               threads, cfg.models.size());

  int status = 0;
  try {
    // Before load_all(): the I/O threads read it once the host says loaded, and that store
    // publishes it to them. Set after, a /v1/models racing the end of loading could read 0.
    ctx.created = api::unix_now();
    plugins.load_all();
    if (server.state() != http::lifecycle::draining) {
      server.set_state(http::lifecycle::ready);
      std::printf("moat: listening on %s\n", host_port(bound).c_str());
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    status = 1;
    server.stop();
  }
  io.join();
  plugins.shutdown();
  spdlog::info("stopped");
  return status;
}

}  // namespace moat::cli

// Security costs, printed as a Markdown table (bench/security/run.sh writes it to
// bench/results/security.md):
//   - decryption throughput of an encrypted checkpoint into memory vs a plain read of the
//     same plaintext file (both from the page cache: the cipher's cost, not the disk's);
//   - the cost of the API key check plus limits per request (authenticate + admit + finish);
//   - TLS handshakes/s, and small request/response round trips/s over one kept-alive TLS
//     connection vs plain TCP, in-process over loopback (the server's HTTP layer not included).
// Usage: security_bench WORK_DIR [SIZE_MIB]   (WORK_DIR must hold server.pem/server.key)
#include <fcntl.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "auth/key_store.h"
#include "crypto/checkpoint_file.h"
#include "tls/tls_context.h"

namespace fs = std::filesystem;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using seconds_d = std::chrono::duration<double>;

namespace {

double now_s() { return seconds_d(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void bench_decrypt(const fs::path& dir, std::size_t mib) {
  const fs::path plain = dir / "plain.bin", enc = dir / "plain.bin.enc";
  {
    // Pseudo-random content (incompressible, like weights); written once per run.
    std::vector<std::uint64_t> block(1 << 17);
    std::mt19937_64 rng(42);
    std::FILE* f = std::fopen(plain.c_str(), "wb");
    for (std::size_t i = 0; i < mib; ++i) {
      for (auto& x : block) x = rng();
      std::fwrite(block.data(), 8, block.size(), f);
    }
    std::fclose(f);
  }
  const auto key = moat::crypto::generate_key();
  double t = now_s();
  moat::crypto::encrypt_file(plain.string(), enc.string(), key);
  const double enc_s = now_s() - t;
  const double gb = double(mib) * (1 << 20) / 1e9;

  // Plain read into one buffer, as a loader without encryption copying the file would.
  double best_read = 1e9, best_dec = 1e9;
  for (int rep = 0; rep < 3; ++rep) {
    moat::crypto::plaintext_buffer buf(fs::file_size(plain));
    t = now_s();
    const int fd = ::open(plain.c_str(), O_RDONLY);
    std::size_t at = 0;
    while (at < buf.size()) {
      const ssize_t n = ::read(fd, buf.data() + at, std::min<std::size_t>(buf.size() - at, 1 << 24));
      if (n <= 0) break;
      at += static_cast<std::size_t>(n);
    }
    ::close(fd);
    best_read = std::min(best_read, now_s() - t);
    t = now_s();
    auto dec = moat::crypto::decrypt_file_to_memory(enc.string(), key);
    best_dec = std::min(best_dec, now_s() - t);
  }
  std::printf("| checkpoint %zu MiB: plain read into memory | %.2f GB/s |\n", mib, gb / best_read);
  std::printf("| checkpoint %zu MiB: decrypt_file_to_memory (AES-256-GCM, 1 MiB chunks) | %.2f GB/s |\n", mib, gb / best_dec);
  std::printf("| checkpoint %zu MiB: encrypt_file (file to file) | %.2f GB/s |\n", mib, gb / enc_s);
  fs::remove(plain);
  fs::remove(enc);
}

void bench_keys() {
  moat::auth::auth_config cfg;
  std::vector<std::string> keys;
  for (int i = 0; i < 100; ++i) {
    keys.push_back(moat::auth::generate_api_key());
    moat::auth::api_key_entry e;
    e.name = "key-" + std::to_string(i);
    e.sha256 = moat::auth::digest_of(keys.back());
    e.rpm = 1'000'000'00;
    e.tpm = 1'000'000'000'000ull;
    e.max_concurrent = 1000;
    cfg.api_keys.push_back(e);
  }
  moat::auth::key_store store(cfg);
  const std::string auth = "Bearer " + keys[57];
  const int n = 200000;
  double t = now_s();
  for (int i = 0; i < n; ++i) {
    auto d = store.check("/v1/chat/completions", auth, "m", moat::auth::clock_type::now());
    d.lease.finish(100);
  }
  const double per = (now_s() - t) / n;
  std::printf("| API key check + rpm/tpm/concurrency (100 keys configured) | %.2f us/request |\n", per * 1e6);
  t = now_s();
  for (int i = 0; i < n; ++i) {
    moat::auth::key_ref who;
    (void)store.authenticate("/v1/chat/completions", "Bearer wrong", who);
  }
  std::printf("| wrong key refused (401) | %.2f us/request |\n", (now_s() - t) / n * 1e6);
}

// Server: accepts `connections` connections; on each, handshakes (if TLS) and echoes fixed
// responses to fixed-size requests until the client closes.
constexpr std::size_t request_bytes = 300, response_bytes = 600;

template <class Stream>
void serve_echo(Stream& s) {
  std::vector<char> req(request_bytes), resp(response_bytes, 'r');
  boost::system::error_code ec;
  while (true) {
    net::read(s, net::buffer(req), ec);
    if (ec) return;
    net::write(s, net::buffer(resp), ec);
    if (ec) return;
  }
}

void bench_tls(const fs::path& dir) {
  auto server_ctx = moat::tls::make_server_context({(dir / "server.pem").string(), (dir / "server.key").string(), "", false});
  moat::tls::client_options co;
  co.ca = (dir / "ca.pem").string();
  auto client_ctx = moat::tls::make_client_context(co);
  net::io_context ioc;
  const int handshakes = 500, round_trips = 20000;

  for (bool tls : {true, false}) {
    tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    const int conns = tls ? handshakes + 1 : 1;
    std::thread server([&] {
      for (int i = 0; i < conns; ++i) {
        tcp::socket sock(ioc);
        acceptor.accept(sock);
        sock.set_option(tcp::no_delay(true));
        if (tls) {
          ssl::stream<tcp::socket> st(std::move(sock), *server_ctx);
          boost::system::error_code ec;
          st.handshake(ssl::stream_base::server, ec);
          if (!ec) serve_echo(st);
        } else {
          serve_echo(sock);
        }
      }
    });
    std::vector<char> req(request_bytes, 'q'), resp(response_bytes);
    if (tls) {
      const double t = now_s();
      for (int i = 0; i < handshakes; ++i) {
        tcp::socket sock(ioc);
        sock.connect(acceptor.local_endpoint());
        ssl::stream<tcp::socket> st(std::move(sock), *client_ctx);
        moat::tls::configure_client_connection(st.native_handle(), "localhost");
        st.handshake(ssl::stream_base::client);
        // One round trip so the server finishes its side before the next connection.
        net::write(st, net::buffer(req));
        net::read(st, net::buffer(resp));
      }
      std::printf("| TLS 1.3 handshakes (P-256 cert, new connection each, + one round trip) | %.0f /s |\n",
                  handshakes / (now_s() - t));
    }
    tcp::socket sock(ioc);
    sock.connect(acceptor.local_endpoint());
    sock.set_option(tcp::no_delay(true));
    double t = 0;
    if (tls) {
      ssl::stream<tcp::socket> st(std::move(sock), *client_ctx);
      moat::tls::configure_client_connection(st.native_handle(), "localhost");
      st.handshake(ssl::stream_base::client);
      t = now_s();
      for (int i = 0; i < round_trips; ++i) {
        net::write(st, net::buffer(req));
        net::read(st, net::buffer(resp));
      }
      t = now_s() - t;
      boost::system::error_code ec;
      st.shutdown(ec);
    } else {
      t = now_s();
      for (int i = 0; i < round_trips; ++i) {
        net::write(sock, net::buffer(req));
        net::read(sock, net::buffer(resp));
      }
      t = now_s() - t;
      sock.close();
    }
    server.join();
    std::printf("| kept-alive %s: %zu B request / %zu B response round trips | %.0f /s |\n",
                tls ? "TLS" : "plain TCP", request_bytes, response_bytes, round_trips / t);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: security_bench WORK_DIR [SIZE_MIB]\n");
    return 2;
  }
  const fs::path dir = argv[1];
  const std::size_t mib = argc > 2 ? std::stoul(argv[2]) : 1024;
  std::printf("| measure | result |\n|---|---|\n");
  bench_decrypt(dir, mib);
  bench_keys();
  try {
    bench_tls(dir);
  } catch (const std::exception& e) {
    std::printf("| TLS | failed: %s |\n", e.what());
  }
  return 0;
}

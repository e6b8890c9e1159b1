// The TLS contexts moat uses on both sides of a connection: the gateway's server (HTTPS, with
// optional mTLS) and, later, the upstream plugin's client (its own cert, key and CA per
// upstream). OpenSSL through Boost.Asio; TLS 1.2 and 1.3 only; ECDHE with AEAD ciphers on 1.2.
//
//   moat::tls::server_context_holder tls({.cert = "server.pem", .key = "server.key",
//                                         .client_ca = "clients-ca.pem", .require_client_cert = true});
//   // on accept: each connection keeps the context it started with, so a reload never drops it
//   auto ctx = tls.current();
//   auto stream = std::make_shared<beast::ssl_stream<beast::tcp_stream>>(std::move(socket), *ctx);
//   ... async_handshake(ssl::stream_base::server, ...) ...
//   moat::tls::peer_identity who = moat::tls::peer_identity_of(stream->native_handle());
//   // on SIGHUP: tls.reload();   (new handshakes use the new cert; a bad file keeps the old one)
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

typedef struct ssl_st SSL;

namespace moat::tls {

// Thrown when a context cannot be built; what() names the file and OpenSSL's reason.
class tls_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// server.tls in the config.
struct server_options {
  std::string cert;       // PEM certificate chain (leaf first)
  std::string key;        // PEM private key
  std::string client_ca;  // PEM CA bundle for client certificates; empty: none asked for
  bool require_client_cert = false;  // needs client_ca; a client without a valid cert fails the handshake
};

// One upstream's client side.
struct client_options {
  std::string ca;    // PEM CA bundle to verify the server; empty: the system store
  std::string cert;  // client certificate for mTLS; empty: none
  std::string key;
  bool verify_peer = true;  // false only for tests against self-signed servers
};

using context_ptr = std::shared_ptr<boost::asio::ssl::context>;

context_ptr make_server_context(const server_options& options);
context_ptr make_client_context(const client_options& options);

// Per client connection: SNI and host-name verification against `host` (DNS name or IP).
// Returns false when OpenSSL refuses the name.
bool configure_client_connection(SSL* ssl, const std::string& host);

// The peer's certificate after a handshake: for policies (ctx.client) and the audit line.
struct peer_identity {
  bool present = false;    // the peer sent a certificate
  bool verified = false;   // and it chained to the configured CA
  std::string subject;     // RFC 2253, e.g. "CN=alice,O=Example"
  std::string common_name;
  std::vector<std::string> sans;  // "DNS:a.example", "email:a@b", "URI:spiffe://...", "IP:10.0.0.1"
};
peer_identity peer_identity_of(SSL* ssl);

// Holds the server context new handshakes use, and swaps it on reload.
class server_context_holder {
 public:
  explicit server_context_holder(server_options options);  // throws tls_error
  context_ptr current() const;
  // Re-reads cert, key and CA. Returns "" on success, else the reason (old context kept).
  std::string reload();

 private:
  server_options options_;
  mutable std::mutex mu_;  // guards ctx_
  context_ptr ctx_;
};

}  // namespace moat::tls

#include "tls/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

namespace moat::tls {

namespace ssl = boost::asio::ssl;

namespace {

// TLS 1.2 suites: forward secrecy (ECDHE) and AEAD only. TLS 1.3 suites are all AEAD already.
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string openssl_reason() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

[[noreturn]] void fail(const std::string& what) {
  throw tls_error(what + ": " + openssl_reason());
}

void common_setup(SSL_CTX* ctx) {
  ERR_clear_error();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
    fail("cannot limit TLS versions");
  if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) fail("cannot set TLS 1.2 ciphers");
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
}

void load_identity(SSL_CTX* ctx, const std::string& cert, const std::string& key) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) fail(cert + ": cannot load certificate");
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) fail(key + ": cannot load the private key, or it does not match " + cert);
  if (SSL_CTX_check_private_key(ctx) != 1) fail(key + ": does not match the certificate " + cert);
}

}  // namespace

context_ptr make_server_context(const server_options& o) {
  if (o.cert.empty() || o.key.empty()) throw tls_error("server.tls needs both cert and key");
  if (o.require_client_cert && o.client_ca.empty())
    throw tls_error("server.tls.require_client_cert needs client_ca");
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  common_setup(c);
  load_identity(c, o.cert, o.key);
  if (!o.client_ca.empty()) {
    if (SSL_CTX_load_verify_locations(c, o.client_ca.c_str(), nullptr) != 1)
      fail(o.client_ca + ": cannot load client CA");
    // Tell clients which CAs we accept, so they pick the right certificate.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.client_ca.c_str());
    if (!names) fail(o.client_ca + ": no CA names in file");
    SSL_CTX_set_client_CA_list(c, names);
    int mode = SSL_VERIFY_PEER;
    if (o.require_client_cert) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(c, mode, nullptr);
    // Distinct session-id context: sessions are not resumed across differently configured servers.
    static constexpr unsigned char sid[] = "moat-mtls";
    SSL_CTX_set_session_id_context(c, sid, sizeof sid - 1);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  }
  return ctx;
}

context_ptr make_client_context(const client_options& o) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX* c = ctx->native_handle();
  common_setup(c);
  if (o.ca.empty()) {
    if (SSL_CTX_set_default_verify_paths(c) != 1) fail("cannot load the system CA store");
  } else if (SSL_CTX_load_verify_locations(c, o.ca.c_str(), nullptr) != 1) {
    fail(o.ca + ": cannot load CA");
  }
  if (!o.cert.empty() || !o.key.empty()) load_identity(c, o.cert, o.key);
  SSL_CTX_set_verify(c, o.verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  return ctx;
}

bool configure_client_connection(SSL* ssl, const std::string& host) {
  // SNI is for names only; an IP literal is checked as an IP SAN.
  const bool is_ip = host.find_first_not_of("0123456789.:") == std::string::npos;
  if (!is_ip && SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) return false;
  return SSL_set1_host(ssl, host.c_str()) == 1;
}

peer_identity peer_identity_of(SSL* ssl) {
  peer_identity id;
  X509* cert = ssl ? SSL_get0_peer_certificate(ssl) : nullptr;
  if (!cert) return id;
  id.present = true;
  id.verified = SSL_get_verify_result(ssl) == X509_V_OK;
  X509_NAME* name = X509_get_subject_name(cert);
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    if (n > 0) id.subject.assign(data, static_cast<std::size_t>(n));
    BIO_free(bio);
  }
  const int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (at >= 0) {
    const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at));
    unsigned char* utf8 = nullptr;
    const int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n >= 0) id.common_name.assign(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
    OPENSSL_free(utf8);
  }
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    auto text = [](const ASN1_STRING* s) {
      return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                         static_cast<std::size_t>(ASN1_STRING_length(s)));
    };
    if (g->type == GEN_DNS) id.sans.push_back("DNS:" + text(g->d.dNSName));
    else if (g->type == GEN_EMAIL) id.sans.push_back("email:" + text(g->d.rfc822Name));
    else if (g->type == GEN_URI) id.sans.push_back("URI:" + text(g->d.uniformResourceIdentifier));
    else if (g->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = g->d.iPAddress;
      const unsigned char* b = ASN1_STRING_get0_data(ip);
      std::string s;
      if (ASN1_STRING_length(ip) == 4) {
        for (int k = 0; k < 4; ++k) s += (k ? "." : "") + std::to_string(b[k]);
      } else {
        char hex[3];
        for (int k = 0; k < ASN1_STRING_length(ip); ++k) {
          std::snprintf(hex, sizeof hex, "%02x", b[k]);
          s += (k && k % 2 == 0 ? ":" : "") + std::string(hex);
        }
      }
      id.sans.push_back("IP:" + s);
    }
  }
  GENERAL_NAMES_free(names);
  return id;
}

server_context_holder::server_context_holder(server_options options)
    : options_(std::move(options)), ctx_(make_server_context(options_)) {}

context_ptr server_context_holder::current() const {
  std::lock_guard lock(mu_);
  return ctx_;
}

std::string server_context_holder::reload() {
  try {
    auto fresh = make_server_context(options_);
    std::lock_guard lock(mu_);
    ctx_ = std::move(fresh);
    spdlog::info("tls: reloaded certificate {}", options_.cert);
    return "";
  } catch (const std::exception& e) {
    spdlog::warn("tls: reload failed, the previous certificate stays in use: {}", e.what());
    return e.what();
  }
}

}  // namespace moat::tls

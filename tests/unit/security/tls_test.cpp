// TLS contexts with certificates made by the test (openssl CLI): versions, mTLS, the client
// subject, reload.
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tls/tls_context.h"

namespace fs = std::filesystem;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using namespace moat::tls;

namespace {

class tls_test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("moat_tls_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    if (std::system("openssl version >/dev/null 2>&1") != 0) {
      ok_ = false;
      return;
    }
    ok_ = make_ca("ca") && make_ca("other-ca") &&
          make_cert("server", "ca", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1") &&
          make_cert("server2", "ca", "/CN=second.localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1") &&
          make_cert("alice", "ca", "/O=Example/CN=alice",
                    "subjectAltName=DNS:alice.example,email:alice@example.com,URI:spiffe://example/alice") &&
          make_cert("mallory", "other-ca", "/CN=mallory", "subjectAltName=DNS:mallory.example");
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override {
    if (!ok_) GTEST_SKIP() << "the openssl command is not available to make test certificates";
  }

  static bool run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }
  static std::string p(const std::string& name) { return (dir_ / name).string(); }
  static bool make_ca(const std::string& name) {
    return run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=" + name +
               " -keyout " + p(name + ".key") + " -out " + p(name + ".pem"));
  }
  static bool make_cert(const std::string& name, const std::string& ca, const std::string& subj,
                        const std::string& ext) {
    std::ofstream(p(name + ".ext")) << ext << "\n";
    return run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj " + subj + " -keyout " +
               p(name + ".key") + " -out " + p(name + ".csr")) &&
           run("openssl x509 -req -days 2 -set_serial " + std::to_string(++serial_) + " -in " + p(name + ".csr") +
               " -CA " + p(ca + ".pem") + " -CAkey " + p(ca + ".key") + " -extfile " + p(name + ".ext") +
               " -out " + p(name + ".pem"));
  }

  struct result {
    boost::system::error_code server, client;
    peer_identity client_seen_by_server;
    peer_identity server_seen_by_client;
    int version = 0;
  };

  // One connection: the server handshakes and, if that worked, writes one byte that the client
  // reads, so a refusal the client only learns after its own handshake (TLS 1.3 client certs)
  // still shows up as a client error.
  static result connect(const context_ptr& server_ctx, ssl::context* client_ctx, const std::string& host = "localhost") {
    result r;
    net::io_context ioc;
    tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    std::thread server([&] {
      tcp::socket s(ioc);
      acceptor.accept(s);
      ssl::stream<tcp::socket> st(std::move(s), *server_ctx);
      st.handshake(ssl::stream_base::server, r.server);
      if (!r.server) {
        r.client_seen_by_server = peer_identity_of(st.native_handle());
        r.version = SSL_version(st.native_handle());
        boost::system::error_code ec;
        net::write(st, net::buffer("k", 1), ec);
        st.shutdown(ec);
      }
    });
    tcp::socket sock(ioc);
    sock.connect(acceptor.local_endpoint());
    if (!client_ctx) {
      // Plain HTTP to the TLS port.
      boost::system::error_code ec;
      net::write(sock, net::buffer(std::string("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")), ec);
      char c;
      net::read(sock, net::buffer(&c, 1), r.client);
    } else {
      ssl::stream<tcp::socket> st(std::move(sock), *client_ctx);
      configure_client_connection(st.native_handle(), host);
      st.handshake(ssl::stream_base::client, r.client);
      if (!r.client) {
        r.server_seen_by_client = peer_identity_of(st.native_handle());
        char c;
        net::read(st, net::buffer(&c, 1), r.client);
      }
    }
    server.join();
    return r;
  }

  static context_ptr client(const std::string& cert = "") {
    client_options o;
    o.ca = p("ca.pem");
    if (!cert.empty()) {
      o.cert = p(cert + ".pem");
      o.key = p(cert + ".key");
    }
    return make_client_context(o);
  }
  static server_options server(bool mtls) {
    server_options o{p("server.pem"), p("server.key"), "", false};
    if (mtls) {
      o.client_ca = p("ca.pem");
      o.require_client_cert = true;
    }
    return o;
  }

  static inline fs::path dir_;
  static inline bool ok_ = false;
  static inline int serial_ = 1000;
};

}  // namespace

TEST_F(tls_test, server_context_allows_only_tls12_and_13) {
  const auto ctx = make_server_context(server(false));
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx->native_handle()), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_max_proto_version(ctx->native_handle()), TLS1_3_VERSION);
  auto c = client();
  const auto r = connect(ctx, c.get());
  ASSERT_FALSE(r.server) << r.server.message();
  ASSERT_FALSE(r.client) << r.client.message();
  EXPECT_EQ(r.version, TLS1_3_VERSION);
  EXPECT_EQ(r.server_seen_by_client.common_name, "localhost");
  EXPECT_TRUE(r.server_seen_by_client.verified);
  EXPECT_FALSE(r.client_seen_by_server.present);

  SSL_CTX_set_max_proto_version(c->native_handle(), TLS1_2_VERSION);
  const auto r12 = connect(ctx, c.get());
  ASSERT_FALSE(r12.server) << r12.server.message();
  EXPECT_EQ(r12.version, TLS1_2_VERSION);
}

TEST_F(tls_test, tls10_and_tls11_clients_are_refused) {
  const auto ctx = make_server_context(server(false));
  for (int version : {TLS1_VERSION, TLS1_1_VERSION}) {
    // A client willing to speak only the old version, with the security level lowered so the
    // refusal comes from the server, not from the client's own library defaults.
    ssl::context old(ssl::context::tls_client);
    SSL_CTX_set_security_level(old.native_handle(), 0);
    SSL_CTX_set_cipher_list(old.native_handle(), "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(old.native_handle(), version);
    SSL_CTX_set_max_proto_version(old.native_handle(), version);
    old.set_verify_mode(ssl::verify_none);
    const auto r = connect(ctx, &old);
    EXPECT_TRUE(r.server) << "version " << std::hex << version << " accepted";
    EXPECT_TRUE(r.client);
  }
}

TEST_F(tls_test, plain_http_to_the_tls_port_is_refused) {
  const auto r = connect(make_server_context(server(false)), nullptr);
  EXPECT_TRUE(r.server);
  EXPECT_TRUE(r.client);  // closed, no HTTP answer
}

TEST_F(tls_test, a_client_that_does_not_trust_the_server_ca_refuses) {
  client_options o;
  o.ca = p("other-ca.pem");
  auto c = make_client_context(o);
  EXPECT_TRUE(connect(make_server_context(server(false)), c.get()).client);
  // And host-name verification: the cert names localhost, not this.
  auto good = client();
  EXPECT_TRUE(connect(make_server_context(server(false)), good.get(), "elsewhere.example").client);
}

TEST_F(tls_test, mtls_accepts_a_client_of_the_ca_and_reports_its_subject) {
  auto c = client("alice");
  const auto r = connect(make_server_context(server(true)), c.get());
  ASSERT_FALSE(r.server) << r.server.message();
  ASSERT_FALSE(r.client) << r.client.message();
  const peer_identity& id = r.client_seen_by_server;
  EXPECT_TRUE(id.present);
  EXPECT_TRUE(id.verified);
  EXPECT_EQ(id.common_name, "alice");
  EXPECT_EQ(id.subject, "CN=alice,O=Example");
  EXPECT_EQ(id.sans, (std::vector<std::string>{"DNS:alice.example", "email:alice@example.com",
                                               "URI:spiffe://example/alice"}));
}

TEST_F(tls_test, mtls_refuses_no_cert_and_a_cert_from_another_ca) {
  const auto ctx = make_server_context(server(true));
  auto none = client();
  const auto r1 = connect(ctx, none.get());
  EXPECT_TRUE(r1.server) << "a client without a certificate was accepted";
  EXPECT_TRUE(r1.client);
  auto other = client("mallory");
  const auto r2 = connect(ctx, other.get());
  EXPECT_TRUE(r2.server) << "a certificate from another CA was accepted";
  EXPECT_TRUE(r2.client);
  EXPECT_FALSE(r2.client_seen_by_server.verified);
}

TEST_F(tls_test, bad_files_are_clear_errors) {
  server_options o = server(false);
  o.key = p("alice.key");  // does not match the certificate
  try {
    make_server_context(o);
    FAIL() << "mismatched key accepted";
  } catch (const tls_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match"), std::string::npos) << e.what();
  }
  o = server(false);
  o.cert = p("missing.pem");
  EXPECT_THROW(make_server_context(o), tls_error);
  o = server(false);
  o.require_client_cert = true;
  EXPECT_THROW(make_server_context(o), tls_error);
}

TEST_F(tls_test, reload_swaps_the_certificate_for_new_handshakes_only) {
  fs::copy_file(p("server.pem"), p("live.pem"), fs::copy_options::overwrite_existing);
  fs::copy_file(p("server.key"), p("live.key"), fs::copy_options::overwrite_existing);
  server_context_holder holder({p("live.pem"), p("live.key"), "", false});
  const context_ptr before = holder.current();
  auto c = client();
  EXPECT_EQ(connect(holder.current(), c.get()).server_seen_by_client.common_name, "localhost");

  fs::copy_file(p("server2.pem"), p("live.pem"), fs::copy_options::overwrite_existing);
  fs::copy_file(p("server2.key"), p("live.key"), fs::copy_options::overwrite_existing);
  EXPECT_EQ(holder.reload(), "");
  EXPECT_NE(holder.current(), before);
  EXPECT_EQ(connect(holder.current(), c.get()).server_seen_by_client.common_name, "second.localhost");
  // A connection that started on the old context keeps it (the session holds the pointer).
  EXPECT_EQ(connect(before, c.get()).server_seen_by_client.common_name, "localhost");

  std::ofstream(p("live.pem"), std::ios::trunc) << "not a certificate\n";
  const context_ptr good = holder.current();
  EXPECT_NE(holder.reload(), "");
  EXPECT_EQ(holder.current(), good);
}

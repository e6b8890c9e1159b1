// A real http::server on an ephemeral loopback port, run on its own thread for one test, and a
// blocking client side, shared by the HTTP server and session tests:
//
//   class my_test : public server_fixture<my_handler> {
//     void SetUp() override { config::server_config limits; start(limits, 1); }
//   };
//   TEST_F(my_test, x) { auto s = connect(); send(s, raw); auto res = read_response(s, buf); }
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <string>
#include <thread>

#include "http/server.h"

namespace moat::testing {

template <class Handler>
class server_fixture : public ::testing::Test {
 protected:
  using tcp = boost::asio::ip::tcp;
  using response = boost::beast::http::response<boost::beast::http::string_body>;

  // Listens on 127.0.0.1:<any>, marks the server ready and runs it on `threads` I/O threads.
  void start(const config::server_config& limits, int threads) {
    server_ = std::make_unique<http::server>(limits, handler_, registry_);
    port_ = server_->listen("127.0.0.1", 0).port;
    ASSERT_NE(port_, 0);
    server_->set_state(http::lifecycle::ready);
    thread_ = std::thread([this, threads] { server_->run(threads); });
  }
  void TearDown() override {
    if (server_ == nullptr) return;
    server_->stop();
    thread_.join();
  }

  tcp::socket connect() {
    tcp::socket s(client_io_);
    s.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port_));
    return s;
  }
  static void send(tcp::socket& s, const std::string& raw) {
    boost::asio::write(s, boost::asio::buffer(raw));
  }
  static response read_response(tcp::socket& s, boost::beast::flat_buffer& buf) {
    response res;
    boost::beast::http::read(s, buf, res);
    return res;
  }

  metrics::registry registry_{{}, "test", "none"};
  Handler handler_;
  std::unique_ptr<http::server> server_;
  uint16_t port_ = 0;
  std::thread thread_;
  boost::asio::io_context client_io_;
};

}  // namespace moat::testing

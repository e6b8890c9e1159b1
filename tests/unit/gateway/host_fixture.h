// What the host's unit tests share (host_test.cpp, host_queue_test.cpp): the fake plugin's
// path, a sink that records events and checks they arrive on the strand, and a fixture that runs
// an io_context on its own thread and submits chat requests on a strand, as a handler would.
//
//   TEST_F(host_fixture, ...) { auto& b = make_backend("{}"); auto sink = ...; submit(b, sink); }
#pragma once

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <filesystem>
#include <future>
#include <thread>

#include "host/host.h"
#include "host/request_builder.h"

namespace moat::host_test {

namespace net = boost::asio;

inline const std::filesystem::path plugin_dir = FAKE_PLUGIN_DIR;
inline const std::filesystem::path fake_path = plugin_dir / "libmoat_fake.so";

inline int plugin_cancels() {
  void* h = dlopen(fake_path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (!h) return -1;
  auto fn = reinterpret_cast<int (*)()>(dlsym(h, "fake_plugin_cancels"));
  const int n = fn ? fn() : -1;
  dlclose(h);
  return n;
}

// Collects events and when each arrived; checks each arrives on the strand; resolves when the
// terminal one comes.
class recording_sink : public host::event_sink {
 public:
  explicit recording_sink(net::strand<net::io_context::executor_type> strand) : strand_(strand) {}
  void on_event(host::owned_event&& ev) override {
    on_strand = on_strand && strand_.running_in_this_thread();
    const bool terminal = ev.terminal();
    events.push_back(std::move(ev));
    arrived.push_back(std::chrono::steady_clock::now());
    if (terminal) done.set_value();
  }
  std::vector<host::owned_event> events;
  std::vector<std::chrono::steady_clock::time_point> arrived;
  bool on_strand = true;
  std::promise<void> done;

 private:
  net::strand<net::io_context::executor_type> strand_;
};

class host_fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(fake_path)) GTEST_SKIP() << "fake plugin not built: " << fake_path;
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    work_.reset();
    // The deadline sweep's timer stays armed up to a tick (1 s here) after the last call: the
    // test is over, so the context need not run out of work by itself (one test checks that).
    io_.stop();
    if (thread_.joinable()) thread_.join();
    // Then the backend, as serve does (I/O threads joined, then plugins shut down): destroying
    // it ends the calls still open, and their drains must not run while it is being freed.
    backend_.reset();
  }

  // A backend of the fake plugin, or of `library` when given (an in-process plugin).
  host::backend& make_backend(const std::string& options, uint32_t max_queue = 1024,
                              std::chrono::milliseconds timeout = std::chrono::seconds(30),
                              std::shared_ptr<host::plugin_library> library = nullptr) {
    config::model_config m;
    m.name = "fake-model";
    m.backend = "fake";
    m.options_json = options;
    m.max_queue = max_queue;
    m.where = "test.yaml:3: models[0]";
    if (!library) library = host::load_plugin(fake_path);
    backend_ = std::make_unique<host::backend>(m, std::move(library), "/tmp", registry_, timeout);
    backend_->create();
    return *backend_;
  }

  // Submits a chat request on the strand, as a handler would.
  host::submit_outcome submit(host::backend& b, std::shared_ptr<recording_sink> sink,
                              bool stream = false) {
    std::promise<host::submit_outcome> out;
    net::post(strand_, [&] {
      openai::chat_request req;
      req.model = "fake-model";
      req.stream = stream;
      req.messages.push_back({"user", "hi", ""});
      host::request_builder builder;
      out.set_value(b.submit(builder.chat(req, "{}"), sink, strand_));
    });
    return out.get_future().get();
  }

  metrics::registry registry_{{"fake-model"}, "t", "t"};
  net::io_context io_;
  net::executor_work_guard<net::io_context::executor_type> work_ = net::make_work_guard(io_);
  net::strand<net::io_context::executor_type> strand_ = net::make_strand(io_);
  std::thread thread_;
  std::unique_ptr<host::backend> backend_;
};

}  // namespace moat::host_test

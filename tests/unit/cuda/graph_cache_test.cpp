// graph_cache (backends/cuda/graph_cache.h) against a fake stream that logs every call: capture
// on first use, replay after, padding to buckets, eager fallbacks, invalidation on a new layout.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "graph_cache.h"

namespace moat::cuda {
namespace {

// Records what a real stream would be asked to do; "kernels" enqueued while capturing go into
// the graph being built, otherwise they "run" at once.
class fake_stream : public graph_stream {
 public:
  void begin_capture() override {
    if (capturing) throw std::logic_error("nested capture");
    if (fail_begin) throw std::runtime_error("capture unsupported");
    capturing = true;
    log.push_back("begin");
  }
  graph_id end_capture() override {
    if (!capturing) throw std::logic_error("end without begin");
    capturing = false;
    if (fail_end) throw std::runtime_error("instantiate failed");
    const graph_id id = next_id++;
    graphs[id] = recording;
    live.push_back(id);
    recording.clear();
    log.push_back("end " + std::to_string(id));
    return id;
  }
  void abort_capture() noexcept override {
    capturing = false;
    recording.clear();
    log.push_back("abort");
  }
  void launch(graph_id g) override {
    if (std::find(live.begin(), live.end(), g) == live.end()) throw std::logic_error("launch of a destroyed graph");
    for (const auto& k : graphs[g]) ran.push_back(k);
    log.push_back("launch " + std::to_string(g));
  }
  void destroy(graph_id g) noexcept override {
    std::erase(live, g);
    log.push_back("destroy " + std::to_string(g));
  }
  // What a decode step enqueues.
  void kernel(const std::string& k) {
    if (capturing) {
      recording.push_back(k);
    } else {
      ran.push_back(k);
    }
  }

  bool capturing = false, fail_begin = false, fail_end = false;
  graph_id next_id = 1;
  std::map<graph_id, std::vector<std::string>> graphs;
  std::vector<graph_id> live;
  std::vector<std::string> recording, ran, log;
};

struct graph_fixture : ::testing::Test {
  fake_stream stream;
  graph_cache cache{stream, graph_buckets::defaults(16), true};  // 1 2 4 8 16
  std::vector<int32_t> recorded_rows;
  graph_cache::record_fn step = [this](int32_t rows) {
    recorded_rows.push_back(rows);
    stream.kernel("decode x" + std::to_string(rows));
  };
  void SetUp() override { cache.set_layout({.table_width = 8, .epoch = 1}); }
};

TEST_F(graph_fixture, first_use_captures_then_replays) {
  EXPECT_EQ(cache.run(3, step), step_mode::captured);
  EXPECT_EQ(recorded_rows, std::vector<int32_t>{4});  // padded to the bucket
  EXPECT_EQ(stream.ran, std::vector<std::string>{"decode x4"});  // captured, then launched once
  EXPECT_EQ(cache.run(4, step), step_mode::replayed);
  EXPECT_EQ(cache.run(3, step), step_mode::replayed);
  EXPECT_EQ(recorded_rows.size(), 1u) << "a replay must not record again";
  EXPECT_EQ(stream.ran.size(), 3u);
  EXPECT_EQ(cache.run(5, step), step_mode::captured);  // another bucket: its own graph
  EXPECT_EQ(recorded_rows.back(), 8);
  EXPECT_EQ(cache.graphs(), 2u);
  EXPECT_EQ(cache.stats().captures, 2);
  EXPECT_EQ(cache.stats().replays, 2);
  EXPECT_EQ(cache.rows_for(3), 4);
  EXPECT_FALSE(stream.capturing);
}

TEST_F(graph_fixture, a_batch_past_every_bucket_runs_eagerly) {
  EXPECT_EQ(cache.run(17, step), step_mode::eager);
  EXPECT_EQ(recorded_rows, std::vector<int32_t>{17});
  EXPECT_EQ(cache.graphs(), 0u);
  EXPECT_EQ(cache.rows_for(17), 17);
  EXPECT_TRUE(std::find(stream.log.begin(), stream.log.end(), "begin") == stream.log.end());
}

TEST_F(graph_fixture, a_new_layout_destroys_every_graph_and_recaptures) {
  cache.run(1, step);
  cache.run(2, step);
  ASSERT_EQ(stream.live.size(), 2u);
  cache.set_layout({.table_width = 8, .epoch = 1});  // unchanged: nothing happens
  EXPECT_EQ(stream.live.size(), 2u);
  cache.set_layout({.table_width = 16, .epoch = 1});  // block tables grew
  EXPECT_TRUE(stream.live.empty());
  EXPECT_EQ(cache.graphs(), 0u);
  EXPECT_EQ(cache.stats().invalidations, 1);
  EXPECT_EQ(cache.run(2, step), step_mode::captured);  // fresh capture, never a stale launch
  cache.set_layout({.table_width = 16, .epoch = 2});  // a buffer moved
  EXPECT_TRUE(stream.live.empty());
  EXPECT_EQ(cache.run(2, step), step_mode::captured);
  EXPECT_EQ(cache.stats().invalidations, 2);
}

TEST_F(graph_fixture, a_failed_capture_falls_back_to_eager_for_that_bucket) {
  graph_cache::record_fn throwing = [this](int32_t rows) {
    if (stream.capturing) throw std::runtime_error("cudaMalloc during capture");
    recorded_rows.push_back(rows);
    stream.kernel("decode x" + std::to_string(rows));
  };
  EXPECT_EQ(cache.run(2, throwing), step_mode::eager);
  EXPECT_FALSE(stream.capturing) << "the stream must be left out of capture mode";
  EXPECT_EQ(recorded_rows, std::vector<int32_t>{2});  // unpadded, eager, and the step still ran
  EXPECT_EQ(stream.ran, std::vector<std::string>{"decode x2"});
  EXPECT_EQ(cache.failure_reason(), "cudaMalloc during capture");
  EXPECT_EQ(cache.run(2, step), step_mode::eager);  // not retried for this layout
  EXPECT_EQ(cache.rows_for(2), 2);
  EXPECT_EQ(cache.run(1, step), step_mode::captured);  // other buckets still capture
  cache.set_layout({.table_width = 32, .epoch = 1});
  EXPECT_EQ(cache.run(2, step), step_mode::captured);  // a new layout retries
}

TEST_F(graph_fixture, an_instantiate_failure_is_a_failed_capture) {
  stream.fail_end = true;
  EXPECT_EQ(cache.run(4, step), step_mode::eager);
  EXPECT_EQ(cache.stats().failures, 1);
  EXPECT_EQ(cache.failure_reason(), "instantiate failed");
  EXPECT_EQ(stream.ran, std::vector<std::string>{"decode x4"});
}

TEST_F(graph_fixture, an_eager_step_error_propagates) {
  graph_cache::record_fn broken = [](int32_t) { throw std::runtime_error("kernel launch failed"); };
  EXPECT_THROW(cache.run(100, broken), std::runtime_error);
}

TEST(GraphCache, DisabledAlwaysRunsEagerly) {
  fake_stream stream;
  graph_cache cache(stream, graph_buckets::defaults(16), false);
  std::vector<int32_t> rows;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(cache.run(3, [&](int32_t r) { rows.push_back(r); }), step_mode::eager);
  EXPECT_EQ(rows, (std::vector<int32_t>{3, 3, 3}));
  EXPECT_TRUE(stream.log.empty());
}

TEST(GraphCache, DestructorDestroysEveryGraph) {
  fake_stream stream;
  {
    graph_cache cache(stream, graph_buckets::defaults(8), true);
    cache.run(1, [&](int32_t) { stream.kernel("k"); });
    cache.run(8, [&](int32_t) { stream.kernel("k"); });
    EXPECT_EQ(stream.live.size(), 2u);
  }
  EXPECT_TRUE(stream.live.empty());
}

}  // namespace
}  // namespace moat::cuda

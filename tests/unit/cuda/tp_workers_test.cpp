// tp_workers (backends/cuda/tp_workers.h): the per-rank threads and step protocol the cuda
// backend runs its tensor-parallel forward on, with CPU collectives in place of NCCL: every
// rank runs every step once on its own thread; a row-parallel projection sharded with the
// engine's tp_slice_cols and summed by thread_all_reduce equals the unsharded one; a rank that
// fails while the others wait in a collective aborts the group instead of hanging it.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

#include "engine/model_error.h"
#include "engine/tensor_parallel.h"
#include "tp_workers.h"

namespace moat::cuda {
namespace {

// A sum all-reduce over threads that ncclCommAbort-style abort() can break: waiting ranks
// throw instead of blocking forever.
class abortable_all_reduce {
 public:
  explicit abortable_all_reduce(int32_t world) : world_(world), acc_(0) {}
  double sum(double x) {
    std::unique_lock lock(mu_);
    if (aborted_) throw std::runtime_error("all-reduce aborted");
    const uint64_t round = round_;
    acc_ += x;
    if (++arrived_ == world_) {
      result_ = acc_;
      acc_ = 0;
      arrived_ = 0;
      ++round_;
      cv_.notify_all();
      return result_;
    }
    cv_.wait(lock, [&] { return round_ != round || aborted_; });
    if (round_ == round) throw std::runtime_error("all-reduce aborted");
    return result_;
  }
  void abort() {
    std::lock_guard lock(mu_);
    aborted_ = true;
    cv_.notify_all();
  }

 private:
  int32_t world_;
  std::mutex mu_;
  std::condition_variable cv_;
  double acc_, result_ = 0;
  int32_t arrived_ = 0;
  uint64_t round_ = 0;
  bool aborted_ = false;
};

TEST(TpWorkers, InitAndStepsRunOnTheRanksOwnThreads) {
  constexpr int32_t world = 4;
  std::vector<std::thread::id> init_thread(world), step_thread(world);
  std::vector<int> runs(world, 0);
  tp_workers w(world, [&](int32_t r) { init_thread[r] = std::this_thread::get_id(); }, {});
  for (int s = 0; s < 50; ++s) {
    w.run([&](int32_t r) {
      ++runs[r];  // one writer per element: each rank only touches its own
      step_thread[r] = std::this_thread::get_id();
    });
  }
  EXPECT_EQ(w.steps(), 50);
  for (int32_t r = 0; r < world; ++r) {
    EXPECT_EQ(runs[r], 50) << "rank " << r;
    EXPECT_EQ(step_thread[r], init_thread[r]) << "rank " << r << " moved threads (its CUDA device would be lost)";
    EXPECT_NE(init_thread[r], std::this_thread::get_id());
  }
  EXPECT_FALSE(w.broken());
}

TEST(TpWorkers, RowParallelProjectionMatchesTheUnshardedOne) {
  // y = W x with W {out, in}: each rank owns a block of input columns (the engine's slicing,
  // as for wo and w_down), computes a partial y, and the all-reduce sums the partials.
  const int64_t out = 24, in = 64;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> wdata(out * in), x(in);
  for (auto& v : wdata) v = dist(rng);
  for (auto& v : x) v = dist(rng);
  const engine::tensor w{"w_down", engine::dtype::f32, {out, in}, wdata.data()};
  std::vector<double> expect(out, 0.0);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) expect[o] += double(wdata[o * in + i]) * x[i];

  for (const int32_t world : {1, 2, 4}) {
    std::vector<std::vector<std::unique_ptr<uint8_t[]>>> owned(world);
    std::vector<engine::tensor> shards(world);
    std::vector<std::vector<float>> y(world, std::vector<float>(out));
    engine::thread_all_reduce ar(world);
    const int64_t per = in / world;
    tp_workers workers(world, [&](int32_t r) {  // "upload": each rank slices its own shard
      shards[r] = engine::tp_slice_cols(w, {r * per, (r + 1) * per}, owned[r]);
    }, {});
    workers.run([&](int32_t r) {
      std::vector<float> row(per);
      for (int64_t o = 0; o < out; ++o) {
        shards[r].row_to_f32(o, row.data());
        float acc = 0;
        for (int64_t i = 0; i < per; ++i) acc += row[i] * x[r * per + i];
        y[r][o] = acc;
      }
      ar.sum(r, y[r].data(), out);
    });
    for (int32_t r = 0; r < world; ++r) {
      for (int64_t o = 0; o < out; ++o) EXPECT_NEAR(y[r][o], expect[o], 1e-4) << "world " << world << " rank " << r;
      EXPECT_EQ(y[r], y[0]) << "ranks disagree bit for bit";
    }
  }
}

TEST(TpWorkers, AFailingRankAbortsTheOthersInsteadOfHangingThem) {
  constexpr int32_t world = 4;
  abortable_all_reduce ar(world);
  std::atomic<int> aborts{0};
  tp_workers w(world, [](int32_t) {}, [&] {
    aborts.fetch_add(1);
    ar.abort();
  });
  std::vector<double> got(world);
  w.run([&](int32_t r) { got[r] = ar.sum(r + 1.0); });  // a healthy step first
  for (double v : got) EXPECT_EQ(v, 10.0);

  // Rank 2 fails before its collective; ranks 0, 1, 3 are blocked in it until the abort.
  try {
    w.run([&](int32_t r) {
      if (r == 2) throw engine::model_error("cuda: out of memory");
      ar.sum(1.0);
    });
    FAIL() << "the step should have failed";
  } catch (const engine::model_error& e) {
    EXPECT_EQ(std::string(e.what()), "tensor parallel rank 2: cuda: out of memory");
  }
  EXPECT_EQ(aborts.load(), 1);
  EXPECT_TRUE(w.broken());
  try {
    w.run([](int32_t) {});
    FAIL() << "a broken group must refuse steps";
  } catch (const engine::model_error& e) {
    EXPECT_NE(std::string(e.what()).find("the model must be re-created"), std::string::npos) << e.what();
  }
}

TEST(TpWorkers, AnInitFailureNamesTheRankAndJoinsEveryThread) {
  std::atomic<int> inits{0};
  try {
    tp_workers w(3, [&](int32_t r) {
      inits.fetch_add(1);
      if (r == 1) throw engine::model_error("cuda: device 5 does not exist (2 found)");
    }, {});
    FAIL() << "init should have failed";
  } catch (const engine::model_error& e) {
    EXPECT_EQ(std::string(e.what()), "tensor parallel rank 1: cuda: device 5 does not exist (2 found)");
  }
  EXPECT_EQ(inits.load(), 3);
  EXPECT_THROW(tp_workers(0, [](int32_t) {}, {}), engine::model_error);
}

}  // namespace
}  // namespace moat::cuda

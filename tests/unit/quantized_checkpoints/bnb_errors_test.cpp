// What the loader says about a bitsandbytes checkpoint it cannot read: each case is the
// transformers-made golden (tests/golden/bnb/nf4 or int8) with one thing changed, and the error
// must name the file and the tensor or key at fault. Also the safetensors reader's U8/I8 sizes.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>

#include "checkpoint_support.h"
#include "engine/model_error.h"
#include "engine/quant/safetensors_writer.h"
#include "engine/safetensors.h"

namespace moat::test {
namespace {

namespace fs = std::filesystem;
using entries = std::vector<engine::quant::safetensors_entry>;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Copies golden/<which> into dir after `edit` changes its tensors and `config` its config.json.
class bnb_errors : public ::testing::Test {
 protected:
  void make(const std::string& which, const std::function<void(entries&)>& edit,
            const std::function<void(std::string&)>& config = {}) {
    const fs::path src = source_path("tests/golden/bnb/" + which);
    const std::string st = read_text(src / "model.safetensors");
    bytes_.assign(st.begin(), st.end());
    tensors_.clear();
    engine::parse_safetensors(bytes_, "golden", tensors_);
    entries e;
    for (const auto& [name, t] : tensors_) {
      size_t n = engine::dtype_row_bytes(t.type, 1);
      for (int64_t d : t.shape) n *= static_cast<size_t>(d);
      e.push_back({name, std::string(engine::dtype_name(t.type)), t.shape, {static_cast<const uint8_t*>(t.data), n}});
    }
    edit(e);
    engine::quant::write_safetensors(dir_.path / "model.safetensors", e);
    std::string cfg = read_text(src / "config.json");
    if (config) config(cfg);
    std::ofstream(dir_.path / "config.json") << cfg;
  }
  void expect_error(const std::vector<std::string>& parts) {
    try {
      engine::load_model(dir_.path);
      ADD_FAILURE() << "loaded";
    } catch (const engine::model_error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(dir_.path.string()), std::string::npos) << msg;
      for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    }
  }
  static void erase(entries& e, const std::string& name) {
    std::erase_if(e, [&](const auto& x) { return x.name == name; });
  }
  static void rename(entries& e, const std::string& from, const std::string& to) {
    for (auto& x : e) {
      if (x.name == from) x.name = to;
    }
  }

  scratch_dir dir_{"bnb_errors"};
  std::vector<uint8_t> bytes_;
  std::map<std::string, engine::tensor, std::less<>> tensors_;
  std::string state_;  // a replacement quant_state JSON, kept alive for the write
};

const std::string q_proj = "model.layers.0.self_attn.q_proj.weight";

TEST_F(bnb_errors, unchanged_copy_loads) {
  make("nf4", [](entries&) {});
  EXPECT_EQ(engine::load_model(dir_.path).weights.layers[0].wq.type, engine::dtype::nf4);
}

TEST_F(bnb_errors, missing_companion_is_named) {
  make("nf4", [](entries& e) { erase(e, q_proj + ".absmax"); });
  expect_error({q_proj, "absmax"});
}

TEST_F(bnb_errors, missing_quant_state_leaves_raw_bytes_that_are_refused) {
  make("nf4", [](entries& e) { erase(e, q_proj + ".quant_state.bitsandbytes__nf4"); });
  expect_error({q_proj, "U8", "bitsandbytes"});
}

TEST_F(bnb_errors, fp4_is_refused_by_name) {
  make("nf4", [](entries& e) {
    rename(e, q_proj + ".quant_state.bitsandbytes__nf4", q_proj + ".quant_state.bitsandbytes__fp4");
  });
  expect_error({"FP4"});
}

TEST_F(bnb_errors, other_blocksizes_are_refused) {
  make("nf4", [this](entries& e) {
    for (auto& x : e) {
      if (x.name != q_proj + ".quant_state.bitsandbytes__nf4") continue;
      state_.assign(x.data.begin(), x.data.end());
      const size_t at = state_.find("\"blocksize\": 64");
      ASSERT_NE(at, std::string::npos) << state_;
      state_.replace(at, 15, "\"blocksize\": 32");
      x.data = {reinterpret_cast<const uint8_t*>(state_.data()), state_.size()};
      x.shape = {static_cast<int64_t>(state_.size())};
    }
  });
  // 32-value blocks need twice the absmax values the file has: the size check finds it first.
  expect_error({q_proj, "absmax"});
}

TEST_F(bnb_errors, int8_without_scb_is_refused) {
  make("int8", [](entries& e) { erase(e, "model.layers.0.self_attn.q_proj.SCB"); });
  expect_error({q_proj, "I8"});
}

TEST_F(bnb_errors, int8_scb_of_the_wrong_length_is_refused) {
  make("int8", [](entries& e) {
    for (auto& x : e) {
      if (x.name == "model.layers.0.self_attn.q_proj.SCB") x.shape = {x.shape[0] - 1}, x.data = x.data.first(x.data.size() - 4);
    }
  });
  expect_error({q_proj, "SCB"});
}

TEST_F(bnb_errors, other_quant_methods_are_named) {
  make("nf4", [](entries&) {}, [](std::string& cfg) {
    const size_t at = cfg.find("\"bitsandbytes\"");
    ASSERT_NE(at, std::string::npos);
    cfg.replace(at, 14, "\"gptq\"");
  });
  expect_error({"quant_method", "gptq"});
}

TEST(safetensors_integers, u8_and_i8_sizes_are_checked) {
  const std::string header = R"({"a":{"dtype":"U8","shape":[3,2],"data_offsets":[0,6]},"b":{"dtype":"I8","shape":[],"data_offsets":[6,7]}})";
  auto file = [&](const std::string& h, size_t data) {
    std::vector<uint8_t> out(8 + h.size() + data, 7);
    const uint64_t n = h.size();
    std::memcpy(out.data(), &n, 8);
    std::memcpy(out.data() + 8, h.data(), h.size());
    return out;
  };
  std::map<std::string, engine::tensor, std::less<>> ts;
  const auto good = file(header, 7);
  engine::parse_safetensors(good, "mem", ts);
  EXPECT_EQ(ts.at("a").type, engine::dtype::u8);
  EXPECT_EQ(ts.at("b").type, engine::dtype::i8);
  std::string bad = header;
  bad.replace(bad.find("[0,6]"), 5, "[0,5]");
  bad.replace(bad.find("[6,7]"), 5, "[5,6]");
  ts.clear();
  EXPECT_THROW(engine::parse_safetensors(file(bad, 7), "mem", ts), engine::model_error);
}

}  // namespace
}  // namespace moat::test

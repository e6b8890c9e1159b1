// `moat quantize`: a synthetic model folder quantized to NF4 in the transformers/bitsandbytes
// layout and read back tensor by tensor; the command's usage errors; and the fixture model
// when ../shared/fixtures has it.
#include "engine/quant/quantize_folder.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/quant/bnb_checkpoint.h"
#include "engine/quant/fp16.h"
#include "engine/quant/nf4.h"
#include "engine/quant/quantize_cli.h"
#include "engine/quant/safetensors_writer.h"
#include "random_values.h"

namespace moat::engine::quant {
namespace {

namespace fs = std::filesystem;

struct read_tensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// A small independent safetensors reader for the test (the engine's refuses U8 tensors).
std::map<std::string, read_tensor> read_all(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string data = ss.str();
  uint64_t len = 0;
  std::memcpy(&len, data.data(), 8);
  EXPECT_EQ(len % 8, 0u) << "header padded to 8 bytes";
  simdjson::dom::parser parser;
  simdjson::dom::object header = parser.parse(data.substr(8, len)).get_object();
  std::map<std::string, read_tensor> out;
  for (auto [key, value] : header) {
    if (key == "__metadata__") continue;
    read_tensor t;
    t.dtype = std::string(std::string_view(value["dtype"]));
    for (auto d : value["shape"].get_array()) t.shape.push_back(int64_t(d));
    auto offs = value["data_offsets"].get_array();
    const uint64_t begin = uint64_t(offs.at(0));
    const uint64_t end = uint64_t(offs.at(1));
    t.bytes.assign(data.begin() + static_cast<long>(8 + len + begin), data.begin() + static_cast<long>(8 + len + end));
    out.emplace(std::string(key), std::move(t));
  }
  return out;
}

template <typename T>
std::span<const uint8_t> bytes_of(const std::vector<T>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(T)};
}

// N(0, 0.1) weights.
std::vector<float> random_values(size_t n, uint32_t seed) {
  return quant_test::random_values(n, seed, 0.1f);
}

class quantize_folder : public testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("moat-quant-test-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "in");
    q_ = random_values(48 * 100, 1);
    down_ = random_values(10 * 33, 2);
    for (float f : down_) down_f16_.push_back(fp32_to_fp16(f));
    embed_ = random_values(20 * 16, 3);
    norm_ = random_values(16, 4);
    write_safetensors(root_ / "in" / "model.safetensors",
                      {{"model.layers.0.self_attn.q_proj.weight", "F32", {48, 100}, bytes_of(q_)},
                       {"model.layers.0.mlp.down_proj.weight", "F16", {10, 33}, bytes_of(down_f16_)},
                       {"model.embed_tokens.weight", "F32", {20, 16}, bytes_of(embed_)},
                       {"model.norm.weight", "F32", {16}, bytes_of(norm_)},
                       {"lm_head.weight", "F32", {20, 16}, bytes_of(embed_)}});
    std::ofstream(root_ / "in" / "config.json") << "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 16\n}\n";
    std::ofstream(root_ / "in" / "tokenizer.json") << "{\"model\": {}}";
  }
  void TearDown() override { fs::remove_all(root_); }

  // Checks one quantized weight against quantizing its values directly.
  void expect_nf4(const std::map<std::string, read_tensor>& out, const std::string& name, const std::vector<float>& values,
                  const std::string& torch_dtype) {
    SCOPED_TRACE(name);
    const read_tensor& w = out.at(name);
    EXPECT_EQ(w.dtype, "U8");
    ASSERT_EQ(w.shape, (std::vector<int64_t>{static_cast<int64_t>((values.size() + 1) / 2), 1}));
    const read_tensor& state = out.at(name + ".quant_state.bitsandbytes__nf4");
    const bnb_nf4_state st = parse_bnb_quant_state({reinterpret_cast<const char*>(state.bytes.data()), state.bytes.size()});
    EXPECT_EQ(st.dtype, torch_dtype);
    EXPECT_EQ(st.numel(), values.size());
    EXPECT_TRUE(st.nested);

    const nf4_tensor direct = quantize_nf4(values.data(), values.size());
    EXPECT_EQ(w.bytes, direct.packed);
    const read_tensor& codes = out.at(name + ".absmax");
    const read_tensor& nested = out.at(name + ".nested_absmax");
    const read_tensor& nested_map = out.at(name + ".nested_quant_map");
    const read_tensor& quant_map = out.at(name + ".quant_map");
    EXPECT_EQ(codes.dtype, "U8");
    const std::vector<float> absmax =
        bnb_absmax(st, codes.bytes.data(), nullptr, codes.bytes.size(), reinterpret_cast<const float*>(nested.bytes.data()),
                   nested.bytes.size() / 4, reinterpret_cast<const float*>(nested_map.bytes.data()),
                   reinterpret_cast<const float*>(quant_map.bytes.data()));
    std::vector<float> y(values.size());
    dequantize_nf4(w.bytes.data(), absmax.data(), y.size(), st.blocksize, y.data());
    for (size_t i = 0; i < y.size(); ++i) {
      // NF4's half-gap bound, widened for the double-quantized absmax.
      ASSERT_LE(std::fabs(y[i] - values[i]), direct.absmax[i / 64] * 0.16f + 1e-3f) << i;
    }
  }

  fs::path root_;
  std::vector<float> q_, down_, embed_, norm_;
  std::vector<uint16_t> down_f16_;
};

TEST_F(quantize_folder, writes_the_bitsandbytes_layout) {
  size_t last_done = 0;
  quantize_folder_options opt;
  opt.progress = [&](size_t done, size_t total) {
    EXPECT_EQ(done, last_done + 1);
    EXPECT_EQ(total, 5u);
    last_done = done;
  };
  const quantize_report r = quantize_model_folder(root_ / "in", root_ / "out", opt);
  EXPECT_EQ(r.tensors, 5u);
  EXPECT_EQ(r.quantized, 2u);
  EXPECT_LT(r.bytes_out, r.bytes_in);

  const auto out = read_all(root_ / "out" / "model.safetensors");
  expect_nf4(out, "model.layers.0.self_attn.q_proj.weight", q_, "float32");
  std::vector<float> down_as_read;
  for (uint16_t h : down_f16_) down_as_read.push_back(fp16_to_fp32(h));
  expect_nf4(out, "model.layers.0.mlp.down_proj.weight", down_as_read, "float16");
  // Embedding, norm and lm_head stay as they were.
  EXPECT_EQ(out.at("model.embed_tokens.weight").bytes, std::vector<uint8_t>(bytes_of(embed_).begin(), bytes_of(embed_).end()));
  EXPECT_EQ(out.at("model.norm.weight").dtype, "F32");
  EXPECT_EQ(out.at("lm_head.weight").shape, (std::vector<int64_t>{20, 16}));
  EXPECT_EQ(out.count("model.embed_tokens.weight.absmax"), 0u);

  // config.json: still JSON, with the bitsandbytes quantization_config; other files copied.
  std::ifstream cfg(root_ / "out" / "config.json");
  std::stringstream ss;
  ss << cfg.rdbuf();
  simdjson::dom::parser parser;
  simdjson::dom::element config;
  ASSERT_EQ(parser.parse(ss.str()).get(config), simdjson::SUCCESS) << ss.str();
  EXPECT_EQ(std::string_view(config["quantization_config"]["bnb_4bit_quant_type"]), "nf4");
  EXPECT_EQ(bool(config["quantization_config"]["bnb_4bit_use_double_quant"]), true);
  EXPECT_EQ(int64_t(config["hidden_size"]), 16);
  EXPECT_TRUE(fs::exists(root_ / "out" / "tokenizer.json"));

  // Quantizing the output again is refused (its config says it is quantized... and its
  // weights are U8, which the loader refuses first).
  EXPECT_ANY_THROW(quantize_model_folder(root_ / "out", root_ / "out2", {}));
}

// What a loader does with a bitsandbytes checkpoint: collect the NF4 weights from the raw
// tensors and hand the packed codes and absmax to the kernels.
TEST_F(quantize_folder, collect_bnb_nf4_reads_the_output_back) {
  quantize_model_folder(root_ / "in", root_ / "out", {});
  const auto file = read_all(root_ / "out" / "model.safetensors");
  std::map<std::string, raw_tensor> raw;
  for (const auto& [name, t] : file) raw[name] = raw_tensor{t.dtype, t.shape, t.bytes.data(), t.bytes.size()};
  const auto weights = collect_bnb_nf4(raw);
  ASSERT_EQ(weights.size(), 2u);
  const bnb_nf4_weight& q = weights.at("model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q.state.shape, (std::vector<size_t>{48, 100}));
  std::vector<float> y(48 * 100);
  dequantize_nf4(q.packed, q.absmax.data(), y.size(), q.state.blocksize, y.data());
  const nf4_tensor direct = quantize_nf4(q_.data(), q_.size());
  for (size_t i = 0; i < y.size(); ++i) ASSERT_LE(std::fabs(y[i] - q_[i]), direct.absmax[i / 64] * 0.16f + 1e-3f) << i;

  // A missing companion tensor or a wrong size is a clear error, not a read past the end.
  auto broken = raw;
  broken.erase("model.layers.0.self_attn.q_proj.weight.nested_absmax");
  EXPECT_THROW(collect_bnb_nf4(broken), std::invalid_argument);
  broken = raw;
  broken["model.layers.0.self_attn.q_proj.weight"].bytes -= 1;
  EXPECT_THROW(collect_bnb_nf4(broken), std::invalid_argument);
  broken = raw;
  broken["model.layers.0.self_attn.q_proj.weight.absmax"].dtype = "F32";
  EXPECT_THROW(collect_bnb_nf4(broken), std::invalid_argument);
}

TEST_F(quantize_folder, command_usage_and_errors) {
  auto run = [](std::vector<std::string> args) {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    return run_quantize_command(static_cast<int>(argv.size()), argv.data());
  };
  EXPECT_EQ(run({"quantize", "--help"}), 0);
  EXPECT_EQ(run({"quantize"}), 2);
  EXPECT_EQ(run({"quantize", "--format", "int3", "a", "b"}), 2);
  EXPECT_EQ(run({"quantize", "--format", "nf4", (root_ / "missing").string(), (root_ / "o").string()}), 1);
  EXPECT_EQ(run({"quantize", "--format", "nf4", (root_ / "in").string(), (root_ / "o").string()}), 0);
  EXPECT_TRUE(fs::exists(root_ / "o" / "model.safetensors"));
}

TEST(quantize_folder_fixture, tinystories_hf) {
  const fs::path model = fs::path(MOAT_FIXTURES_DIR) / "tinystories-656K-hf";
  if (!fs::exists(model / "config.json")) GTEST_SKIP() << "fixture " << model << " is absent";
  const fs::path out = fs::temp_directory_path() / ("moat-quant-fixture-" + std::to_string(::getpid()));
  fs::remove_all(out);
  const quantize_report r = quantize_model_folder(model, out, {});
  EXPECT_GT(r.quantized, 0u);
  EXPECT_LT(r.bytes_out, r.bytes_in);
  fs::remove_all(out);
}

}  // namespace
}  // namespace moat::engine::quant

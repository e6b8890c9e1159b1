// Bits per weight, weight bytes, KV bytes per token and tensor-parallel checks against the
// formulas written out by hand.
#include <gtest/gtest.h>

#include "formats.h"
#include "hardware.h"
#include "memory.h"
#include "model_spec.h"

namespace moat::planner {
namespace {

TEST(formats, bits_per_weight_include_the_scales) {
  EXPECT_DOUBLE_EQ(weight_bits(weight_format::fp16, 32, 4096), 16.0);
  EXPECT_DOUBLE_EQ(weight_bits(weight_format::int8, 32, 4096), 8.0 + 16.0 / 4096);
  EXPECT_DOUBLE_EQ(weight_bits(weight_format::int4, 32, 4096), 4.5);
  EXPECT_DOUBLE_EQ(weight_bits(weight_format::int4, 64, 4096), 4.25);
  EXPECT_DOUBLE_EQ(weight_bits(weight_format::int4, 128, 4096), 4.125);
  EXPECT_DOUBLE_EQ(weight_bits(weight_format::nf4, 32, 4096), 4.5);
  EXPECT_DOUBLE_EQ(weight_bits(weight_format::nf4_dq, 32, 4096), 4.0 + 0.125 + 0.001953125);
  EXPECT_NEAR(weight_bits(weight_format::nf4_dq, 32, 4096), 4.127, 0.0005);
  EXPECT_THROW(weight_bits(weight_format::int4, 48, 4096), plan_error);
  EXPECT_THROW(parse_weight_format("int3"), plan_error);
  EXPECT_THROW(parse_kv_format("fp8"), plan_error);
  EXPECT_EQ(parse_weight_format("nf4-dq"), weight_format::nf4_dq);
}

TEST(memory, kv_bytes_per_token_follow_the_formula) {
  // 2 (K and V) * layers * kv_heads * head_dim * bytes.
  const memory_model m8(load_model("llama-3.1-8b"), weight_format::fp16, 32, kv_format::fp16);
  EXPECT_DOUBLE_EQ(m8.kv_bytes_per_token(), 2.0 * 32 * 8 * 128 * 2);  // 128 KiB
  const memory_model m70(load_model("llama-3.1-70b"), weight_format::fp16, 32, kv_format::fp16);
  EXPECT_DOUBLE_EQ(m70.kv_bytes_per_token(), 2.0 * 80 * 8 * 128 * 2);  // 320 KiB
  const memory_model m405(load_model("llama-3.1-405b"), weight_format::fp16, 32, kv_format::fp16);
  EXPECT_DOUBLE_EQ(m405.kv_bytes_per_token(), 2.0 * 126 * 8 * 128 * 2);  // 504 KiB
  // Llama 2 7B has no GQA: 32 KV heads, four times the 8B's cache per token.
  const memory_model m7(load_model("llama-2-7b"), weight_format::fp16, 32, kv_format::fp16);
  EXPECT_DOUBLE_EQ(m7.kv_bytes_per_token(), 2.0 * 32 * 32 * 128 * 2);
  // int8 KV: one byte plus an fp16 scale per token and head.
  const memory_model q8(load_model("llama-3.1-8b"), weight_format::fp16, 32, kv_format::int8);
  EXPECT_DOUBLE_EQ(q8.kv_bytes_per_token(), 2.0 * 32 * 8 * (128 + 2));
  // Paged, int8 KV is counted in the same blocks: 10 positions take one block of 16.
  const memory_model q8p(load_model("llama-3.1-8b"), weight_format::fp16, 32, kv_format::int8, kv_paging{.block_size = 16});
  EXPECT_DOUBLE_EQ(q8p.on_device({1, 1}, builtin_catalogue().find("h100-80g"), 10, 1).kv, 16 * 2.0 * 32 * 8 * (128 + 2));
}

TEST(memory, fp16_weights_are_two_bytes_per_parameter) {
  for (const char* name : {"llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mixtral-8x7b", "stories260k"}) {
    const auto model = load_model(name);
    const memory_model mm(model, weight_format::fp16, 32, kv_format::fp16);
    EXPECT_DOUBLE_EQ(mm.weights_bytes(), 2.0 * static_cast<double>(model.total_params())) << name;
  }
}

TEST(memory, int8_405b_by_hand) {
  // Blocks and LM head at 1 byte per weight plus a 2-byte scale per output row; the embedding
  // [V, H] and the norms stay at 2 bytes.
  const double H = 16384, I = 53248, kv = 1024, V = 128256, L = 126;
  const double block_weights = 2 * H * H + 2 * kv * H + 3 * H * I;
  const double block_rows = H /*q*/ + 2 * kv /*k,v*/ + H /*o*/ + 2 * I /*gate,up*/ + H /*down*/;
  const double expected = L * (block_weights + 2 * block_rows + 2 * 2 * H) + V * H * 2 /*embedding*/ +
                          (V * H + 2 * V) /*lm head*/ + 2 * H /*final norm*/;
  const memory_model mm(load_model("llama-3.1-405b"), weight_format::int8, 32, kv_format::fp16);
  EXPECT_NEAR(mm.weights_bytes(), expected, 1.0);
  EXPECT_NEAR(mm.weights_bytes() / 1e9, 408.0, 0.5);  // not 405 and not "450 GB"
}

TEST(memory, int4_and_nf4_405b) {
  const auto m = load_model("llama-3.1-405b");
  const double embedding = static_cast<double>(m.embedding_params()) * 2;
  const double rest = static_cast<double>(m.total_params() - m.embedding_params()) -
                      static_cast<double>(m.layers * m.norm_params_per_layer() + m.hidden);
  const double norms = static_cast<double>(m.layers * m.norm_params_per_layer() + m.hidden) * 2;
  for (auto [f, bits] : {std::pair{weight_format::int4, 4.5}, {weight_format::nf4, 4.5},
                         {weight_format::nf4_dq, 4.126953125}}) {
    const memory_model mm(m, f, 32, kv_format::fp16);
    EXPECT_NEAR(mm.weights_bytes(), embedding + rest * bits / 8 + norms, 1.0) << name_of(f);
  }
}

TEST(memory, tensor_parallel_must_divide_the_heads) {
  const auto m = load_model("llama-3.1-8b");  // 32 heads, 8 KV heads
  EXPECT_NO_THROW(check_tensor_parallel(m, 1, "--tp"));
  EXPECT_NO_THROW(check_tensor_parallel(m, 8, "--tp"));
  EXPECT_THROW(check_tensor_parallel(m, 3, "--tp"), plan_error);
  EXPECT_THROW(check_tensor_parallel(m, 16, "--tp"), plan_error);  // divides 32 heads, not 8 KV heads
  EXPECT_THROW(check_tensor_parallel(m, 0, "--tp"), plan_error);
  try {
    check_tensor_parallel(m, 16, "--tp");
  } catch (const plan_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("8 KV heads"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1, 2, 4, 8"), std::string::npos) << msg;
  }
  const memory_model mm(m, weight_format::fp16, 32, kv_format::fp16);
  EXPECT_EQ(mm.valid_tp(8), (std::vector<int>{1, 2, 4, 8}));
  const memory_model tiny(load_model("stories260k"), weight_format::fp16, 32, kv_format::fp16);
  EXPECT_EQ(tiny.valid_tp(8), (std::vector<int>{1, 2, 4}));
}

TEST(memory, sharding_divides_weights_and_kv) {
  const auto dev = builtin_catalogue().find("h100-80g");
  const memory_model mm(load_model("llama-3.1-70b"), weight_format::fp16, 32, kv_format::fp16);
  const per_device one = mm.on_device({1, 1}, dev, 8192, 4);
  const per_device two = mm.on_device({2, 1}, dev, 8192, 4);
  EXPECT_DOUBLE_EQ(one.weights, mm.weights_bytes());
  EXPECT_DOUBLE_EQ(two.weights, mm.weights_bytes() / 2);
  EXPECT_DOUBLE_EQ(one.kv, mm.kv_bytes_per_token() * 8192 * 4);
  EXPECT_DOUBLE_EQ(two.kv, one.kv / 2);
  EXPECT_DOUBLE_EQ(one.overhead, 2.0 * 1024 * 1024 * 1024);
  EXPECT_FALSE(one.fits());  // 141 GB of weights on one 80 GB card
  // Two pipeline stages of 40 layers each: half the blocks; the larger end (the embedding) stays.
  const per_device pp = mm.on_device({1, 2}, dev, 8192, 4);
  EXPECT_LT(pp.weights, one.weights * 0.51);
  EXPECT_DOUBLE_EQ(pp.kv, one.kv / 2);
}

TEST(memory, paged_kv_rounds_every_sequence_up_to_whole_blocks) {
  // Without sharing each sequence holds ceil(context / block_size) blocks.
  const auto m = load_model("llama-3.1-8b");
  const memory_model mm(m, weight_format::fp16, 32, kv_format::fp16, kv_paging{.block_size = 16});
  EXPECT_EQ(mm.kv_blocks(8192, 4), 4 * 512);
  EXPECT_EQ(mm.kv_blocks(100, 3), 3 * 7);  // 100 positions take 7 blocks of 16
  EXPECT_DOUBLE_EQ(mm.kv_positions(100, 3), 3.0 * 112);
  const auto dev = builtin_catalogue().find("h100-80g");
  EXPECT_DOUBLE_EQ(mm.on_device({1, 1}, dev, 100, 3).kv, mm.kv_bytes_per_token() * 3 * 112);
  // A prompt without n > 1 shares nothing: the same blocks.
  const memory_model alone(m, weight_format::fp16, 32, kv_format::fp16, kv_paging{.block_size = 16, .prompt = 80});
  EXPECT_EQ(alone.kv_blocks(100, 3), 3 * 7);
}

TEST(memory, n_choices_share_the_full_prompt_blocks) {
  // The e2e RSS workload: one request, n = 16, a prompt of 402 tokens and 64 generated each.
  // 25 full prompt blocks (400 positions) once; each choice copies the partial block and
  // holds positions 400..465: ceil(66 / 16) = 5 blocks. 25 + 16 * 5 = 105 blocks.
  const auto m = load_model("stories260k");
  const memory_model mm(m, weight_format::fp32, 32, kv_format::fp32, kv_paging{.block_size = 16, .prompt = 402, .n = 16});
  EXPECT_EQ(mm.kv_blocks(466, 16), 105);
  // Within the bound P + N * (M + block_size) rounded up to blocks.
  EXPECT_LE(mm.kv_blocks(466, 16), (402 + 16 * (64 + 16) + 15) / 16);
  // Two requests of 16, and a third with 3 choices, each sharing its own prompt.
  EXPECT_EQ(mm.kv_blocks(466, 35), 2 * 105 + 25 + 3 * 5);
  // A prompt that fills whole blocks: nothing to copy, each choice starts a fresh block.
  const memory_model whole(m, weight_format::fp32, 32, kv_format::fp32, kv_paging{.block_size = 16, .prompt = 400, .n = 4});
  EXPECT_EQ(whole.kv_blocks(464, 4), 25 + 4 * 4);
  // Block size 1: exactly P + N * M positions.
  const memory_model exact(m, weight_format::fp32, 32, kv_format::fp32, kv_paging{.block_size = 1, .prompt = 402, .n = 16});
  EXPECT_DOUBLE_EQ(exact.kv_positions(466, 16), 402 + 16 * 64);
  EXPECT_THROW(memory_model(m, weight_format::fp32, 32, kv_format::fp32, kv_paging{.block_size = 0}), plan_error);
  EXPECT_THROW(memory_model(m, weight_format::fp32, 32, kv_format::fp32, kv_paging{.n = 0}), plan_error);
  EXPECT_THROW(memory_model(m, weight_format::fp32, 32, kv_format::fp32, kv_paging{.block_size = (1 << 20) + 1}),
               plan_error);
  // Absurd workloads give a large number, never an overflow.
  const memory_model big(m, weight_format::fp32, 32, kv_format::fp32, kv_paging{.block_size = 1 << 20, .prompt = 1, .n = 3});
  EXPECT_GT(big.kv_positions(std::int64_t{1} << 62, std::int64_t{1} << 62), 1e36);
}

TEST(memory, moe_reads_only_the_experts_a_batch_touches) {
  const auto m = load_model("mixtral-8x7b");
  const memory_model mm(m, weight_format::fp16, 32, kv_format::fp16);
  const double expert = static_cast<double>(m.expert_params()) * 2;
  // One sequence: 2 of 8 experts per layer.
  const double b1 = mm.weights_read_per_step(1);
  EXPECT_NEAR(mm.weights_bytes() - b1, 32 * 6 * expert + static_cast<double>(m.embedding_params()) * 2, 1.0);
  // A large batch touches all of them.
  EXPECT_NEAR(mm.weights_read_per_step(256), mm.weights_bytes() - static_cast<double>(m.embedding_params()) * 2 +
                                                 256.0 * static_cast<double>(m.hidden) * 2, 1e4);
}

}  // namespace
}  // namespace moat::planner

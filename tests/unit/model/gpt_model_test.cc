// A tiny GPT built from config text, as configs/gpt_tiny.pbtxt is: its parameters (names,
// order, count, the tied head), whole-model gradients against finite differences, the
// split-batch identity data parallelism relies on, and KV-cached decoding against the
// full forward pass.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "model_check.h"

namespace shardtrain {
namespace {

using testing::parse_model;
using testing::randomize_params;

constexpr int64_t kVocab = 11, kPadded = 16, kDim = 8, kMaxSeq = 6, kSeq = 5, kCount = 2;

const char* kGpt = R"(
  layer { name: "wte" embedding { num_embeddings: 11 dim: 8 pad_to: 8 } }
  layer { name: "wpe" position_embedding { max_seq: 6 } }
  layer { name: "h" transformer_block { n_head: 2 count: 2 } }
  layer { name: "ln_f" layer_norm {} }
  layer { name: "lm_head" lm_head { tied_to: "wte" } })";

std::vector<ModelInput> token_inputs(int64_t seq) {
  return {{"tokens", {{seq}, DType::kInt32}}, {"targets", {{seq}, DType::kInt32}}};
}

std::unique_ptr<Model> build_gpt(Backend& be, int64_t seq = kSeq) {
  auto m = Model::build(parse_model(kGpt), token_inputs(seq), kVocab, be);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(m).value() : nullptr;
}

// Four sequences of kSeq tokens (repeats, the last id 10) and their next tokens.
const std::vector<int32_t> kTokens = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 10, 0, 10, 7, 7, 2, 8, 8, 1, 0};
const std::vector<int32_t> kTargets = {1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 0, 10, 7, 7, 2, 8, 8, 1, 0, 4};

TEST(GptModel, ParameterNamesOrderAndCountFollowNanoGpt) {
  CpuBackend be(1);
  auto m = build_gpt(be);
  ASSERT_TRUE(m);
  std::vector<std::string> want = {"wte.weight", "wpe.weight"};
  for (int b = 0; b < kCount; ++b)
    for (const char* local : {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                              "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                              "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"})
      want.push_back("h." + std::to_string(b) + "." + local);
  want.push_back("ln_f.weight");
  want.push_back("ln_f.bias");
  std::vector<std::string> got;
  for (const ParamInfo& p : m->params()) got.push_back(p.name);
  EXPECT_EQ(got, want);  // the tied head declares nothing: no lm_head.* parameter

  const int64_t C = kDim;
  const int64_t block = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (4 * C * C + C);
  EXPECT_EQ(m->num_params(), kPadded * C + kMaxSeq * C + kCount * block + 2 * C);
  EXPECT_EQ(m->params()[0].shape, (Shape{kPadded, kDim}));
  EXPECT_EQ(m->params()[1].shape, (Shape{kMaxSeq, kDim}));
  EXPECT_EQ(m->params()[4].shape, (Shape{3 * kDim, kDim}));  // h.0.attn.c_attn.weight: [out, in]
  EXPECT_EQ(m->max_context(), kSeq);
}

TEST(GptModel, WholeModelGradientsMatchFiniteDifferences) {
  // Every parameter, including wte.weight, which gets the embedding's gradient (rows of
  // the tokens seen) plus the tied head's (every class row); padded rows get neither.
  CpuBackend be(1);
  auto m = build_gpt(be);
  ASSERT_TRUE(m);
  randomize_params(*m, 0.4f, 3);
  testing::GradCheckOptions opt;
  opt.eps = 1e-2f;
  opt.rtol = 2e-2;
  opt.atol = 2e-4;
  opt.max_checks = 48;
  testing::check_model_gradients(*m, {kTokens.data(), kTargets.data()}, 2, opt);
  std::vector<float> g(m->num_params());
  be.copy_to_host(m->flat_grads(), g.data());
  for (int64_t i = kVocab * kDim; i < kPadded * kDim; ++i) EXPECT_EQ(g[i], 0.0f) << "padded row of wte, " << i;
  for (int64_t i = 0; i < kDim; ++i) EXPECT_EQ(g[kPadded * kDim + (kMaxSeq - 1) * kDim + i], 0.0f) << "wpe row 5";
}

// transformer_block fuses each residual add with the LayerNorm after it (residual_layer_norm
// nodes). The same GPT written out as separate add and layer_norm layers, nanoGPT's graph,
// has the same parameters in the same order and gives the same loss and gradients, bit
// for bit on the CPU.
TEST(GptModel, FusedResidualLayerNormEqualsTheUnfusedGraphBitForBit) {
  std::string unfused = R"(
    layer { name: "wte" embedding { num_embeddings: 11 dim: 8 pad_to: 8 } }
    layer { name: "wpe" position_embedding { max_seq: 6 } })";
  std::string x = "wpe";
  for (int b = 0; b < kCount; ++b) {
    const std::string h = "h." + std::to_string(b);
    unfused += "layer { name: '" + h + ".ln_1' layer_norm {} input: '" + x + "' }\n" +
               "layer { name: '" + h + ".attn.c_attn' linear { out_features: 24 init_std: 0.02 } }\n" +
               "layer { name: '" + h + ".attn' causal_self_attention { n_head: 2 } }\n" +
               "layer { name: '" + h + ".attn.c_proj' linear { out_features: 8 init_std: 0.01 } }\n" +
               "layer { name: '" + h + ".res_1' add {} input: '" + x + "' input: '" + h + ".attn.c_proj' }\n" +
               "layer { name: '" + h + ".ln_2' layer_norm {} }\n" +
               "layer { name: '" + h + ".mlp.c_fc' linear { out_features: 32 init_std: 0.02 " +
               "activation: ACTIVATION_GELU_TANH } }\n" +
               "layer { name: '" + h + ".mlp.c_proj' linear { out_features: 8 init_std: 0.01 } }\n" +
               "layer { name: '" + h + ".res_2' add {} input: '" + h + ".res_1' input: '" + h + ".mlp.c_proj' }\n";
    x = h + ".res_2";
  }
  unfused += R"(layer { name: "ln_f" layer_norm {} } layer { name: "lm_head" lm_head { tied_to: "wte" } })";
  CpuBackend be(1);
  auto fused = build_gpt(be);
  auto plain = Model::build(parse_model(unfused), token_inputs(kSeq), kVocab, be);
  ASSERT_TRUE(fused);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_NE(fused->summary().find("h.1.ln_1 (residual_layer_norm)"), std::string::npos) << fused->summary();
  EXPECT_EQ((*plain)->summary().find("residual_layer_norm"), std::string::npos);
  ASSERT_EQ(fused->params().size(), (*plain)->params().size());
  for (size_t i = 0; i < fused->params().size(); ++i) {
    EXPECT_EQ(fused->params()[i].name, (*plain)->params()[i].name);
    EXPECT_EQ(fused->params()[i].offset, (*plain)->params()[i].offset);
  }
  randomize_params(*fused, 0.4f, 5);
  randomize_params(**plain, 0.4f, 5);
  ForwardContext ctx;
  ctx.grad_scale = 1.0f / 4;
  const BatchResult rf = fused->forward_backward(ctx, {kTokens.data(), kTargets.data()}, 4);
  const BatchResult rp = (*plain)->forward_backward(ctx, {kTokens.data(), kTargets.data()}, 4);
  EXPECT_EQ(rf.loss_sum, rp.loss_sum);
  std::vector<float> gf(fused->num_params()), gp((*plain)->num_params());
  be.copy_to_host(fused->flat_grads(), gf.data());
  be.copy_to_host((*plain)->flat_grads(), gp.data());
  for (size_t i = 0; i < gf.size(); ++i) ASSERT_EQ(gf[i], gp[i]) << "gradient " << i;
}

TEST(GptModel, GradientsOfHalfBatchesSumToTheWholeBatch) {
  CpuBackend be(1);
  auto m = build_gpt(be);
  ASSERT_TRUE(m);
  randomize_params(*m, 0.3f, 4);
  const int64_t n = 4, np = m->num_params();
  ForwardContext ctx;
  ctx.grad_scale = 1.0f / n;
  auto grads = [&](int64_t begin, int64_t count) {
    m->forward_backward(ctx, {kTokens.data() + begin * kSeq, kTargets.data() + begin * kSeq}, count);
    std::vector<float> g(np);
    be.copy_to_host(m->flat_grads(), g.data());
    return g;
  };
  const std::vector<float> whole = grads(0, n), first = grads(0, 2), second = grads(2, 2);
  double max_abs = 0, max_err = 0;
  for (int64_t i = 0; i < np; ++i) {
    max_abs = std::max(max_abs, std::fabs(static_cast<double>(whole[i])));
    max_err = std::max(max_err, std::fabs(static_cast<double>(first[i]) + second[i] - whole[i]));
  }
  EXPECT_GT(max_abs, 1e-2);
  EXPECT_LT(max_err, 1e-5 * max_abs);
}

TEST(GptModel, GradsReadyAnnouncesOnlyFinalGradients) {
  // The communicator starts reducing a bucket once grads_ready says its gradients are
  // final: what was announced must equal the step's end result. The tied wte gets its
  // head contribution first and its embedding one last, so it may only be announced last.
  CpuBackend be(1);
  auto m = build_gpt(be);
  ASSERT_TRUE(m);
  randomize_params(*m, 0.3f, 8);
  const int64_t np = m->num_params();
  std::vector<int> firsts;
  std::vector<std::vector<float>> snapshots;
  ForwardContext ctx;
  ctx.grad_scale = 0.5f;
  m->forward_backward(ctx, {kTokens.data(), kTargets.data()}, 2, [&](int first) {
    firsts.push_back(first);
    snapshots.emplace_back(np);
    be.copy_to_host(m->flat_grads(), snapshots.back().data());
  });
  std::vector<float> final_grads(np);
  be.copy_to_host(m->flat_grads(), final_grads.data());
  ASSERT_FALSE(firsts.empty());
  EXPECT_EQ(firsts.back(), 0);
  for (size_t c = 0; c < firsts.size(); ++c) {
    if (c > 0) {
      EXPECT_LT(firsts[c], firsts[c - 1]) << "announcements go down the parameter list";
    }
    const int64_t from = m->params()[firsts[c]].offset;
    for (int64_t i = from; i < np; ++i)
      ASSERT_EQ(snapshots[c][i], final_grads[i]) << "announced " << m->params()[firsts[c]].name << ", element " << i;
  }
}

// Logits [kSeq][kPadded] of one sequence, decoded in chunks (pos advancing by each).
std::vector<std::vector<float>> decode_logits(Model& m, const int32_t* tokens, const std::vector<int64_t>& chunks) {
  std::vector<std::vector<float>> rows(kSeq);
  int64_t pos = 0;
  for (int64_t n : chunks) {
    auto r = m.decode(tokens + pos, 1, n, pos);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return rows;
    EXPECT_EQ(static_cast<int64_t>(r->size()), kPadded);
    pos += n;
    rows[pos - 1] = *r;
  }
  return rows;
}

TEST(GptModel, DecodeMatchesTheFullForwardAtEveryPosition) {
  CpuBackend be(1);
  auto m = build_gpt(be);
  ASSERT_TRUE(m);
  randomize_params(*m, 0.5f, 5);
  for (int s = 0; s < 2; ++s) {
    SCOPED_TRACE("sequence " + std::to_string(s));
    const int32_t* tokens = kTokens.data() + s * kSeq;
    const auto steps = decode_logits(*m, tokens, {1, 1, 1, 1, 1});
    // The full forward's logits through its losses: with position t's target set to c,
    // loss_sum = rest + lse_t - z_t[c], so z_t[c] - z_t[0] = loss(0) - loss(c).
    std::vector<int32_t> targets(kTargets.begin() + s * kSeq, kTargets.begin() + (s + 1) * kSeq);
    auto loss_sum = [&]() { return m->evaluate({tokens, targets.data()}, 1).loss_sum; };
    double want_total = 0;
    for (int64_t t = 0; t < kSeq; ++t) {
      const std::vector<float>& z = steps[t];
      double mx = -INFINITY, sum = 0;
      for (int64_t c = 0; c < kVocab; ++c) mx = std::max(mx, static_cast<double>(z[c]));
      for (int64_t c = 0; c < kVocab; ++c) sum += std::exp(z[c] - mx);
      want_total += mx + std::log(sum) - z[targets[t]];
    }
    EXPECT_NEAR(loss_sum(), want_total, 1e-5);
    double spread = 0;
    for (int64_t t = 0; t < kSeq; ++t) {
      const int32_t keep = targets[t];
      targets[t] = 0;
      const double l0 = loss_sum();
      for (int32_t c = 1; c < kVocab; ++c) {
        targets[t] = c;
        const double full = l0 - loss_sum(), decoded = static_cast<double>(steps[t][c]) - steps[t][0];
        EXPECT_NEAR(decoded, full, 1e-5) << "position " << t << " class " << c;
        spread = std::max(spread, std::fabs(full));
      }
      targets[t] = keep;
    }
    EXPECT_GT(spread, 0.1) << "logits too flat for the comparison to mean anything";

    // Prefill then one at a time, and chunks, give the same logits at each chunk's end.
    for (const std::vector<int64_t>& chunks : {std::vector<int64_t>{3, 1, 1}, {2, 2, 1}, {5}}) {
      const auto other = decode_logits(*m, tokens, chunks);
      int64_t pos = 0;
      for (int64_t n : chunks) {
        pos += n;
        for (int64_t c = 0; c < kPadded; ++c) EXPECT_NEAR(other[pos - 1][c], steps[pos - 1][c], 1e-5) << pos - 1;
      }
    }
  }
}

TEST(GptModel, DecodeBatchesSequencesIndependently) {
  CpuBackend be(1);
  auto m = build_gpt(be);
  ASSERT_TRUE(m);
  randomize_params(*m, 0.5f, 6);
  const auto a = decode_logits(*m, kTokens.data(), {2, 1, 1, 1});
  const auto b = decode_logits(*m, kTokens.data() + kSeq, {2, 1, 1, 1});
  std::vector<int32_t> both(2 * 2);  // [batch, n] per call
  int64_t pos = 0;
  for (int64_t n : {2, 1, 1, 1}) {
    for (int s = 0; s < 2; ++s)
      for (int64_t i = 0; i < n; ++i) both[s * n + i] = kTokens[s * kSeq + pos + i];
    auto r = m->decode(both.data(), 2, n, pos);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    pos += n;
    ASSERT_EQ(static_cast<int64_t>(r->size()), 2 * kPadded);
    for (int64_t c = 0; c < kPadded; ++c) {
      EXPECT_NEAR((*r)[c], a[pos - 1][c], 1e-5) << pos - 1;
      EXPECT_NEAR((*r)[kPadded + c], b[pos - 1][c], 1e-5) << pos - 1;
    }
  }
}

TEST(GptModel, DecodeRejectsPositionsOutsideTheContext) {
  CpuBackend be(1);
  auto m = build_gpt(be);
  ASSERT_TRUE(m);
  const int32_t tokens[6] = {1, 2, 3, 4, 5, 6};
  auto past_end = m->decode(tokens, 1, 2, kSeq - 1);
  ASSERT_FALSE(past_end.ok());
  EXPECT_EQ(past_end.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(past_end.status().message().find("context of 5"), std::string::npos) << past_end.status().message();
  EXPECT_FALSE(m->decode(tokens, 1, 6, 0).ok());
  EXPECT_FALSE(m->decode(tokens, 1, 1, -1).ok());
  EXPECT_FALSE(m->decode(tokens, 0, 1, 0).ok());
  EXPECT_TRUE(m->decode(tokens, 1, 5, 0).ok());
}

}  // namespace
}  // namespace shardtrain

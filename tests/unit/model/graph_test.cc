// The model graph: transformer_block expansion (nanoGPT's names, wiring and GPT-2 init),
// configuration errors that name their layer, and gradients of values read by several
// layers (they accumulate).
#include <gtest/gtest.h>
#include <google/protobuf/text_format.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "model/graph_config.h"
#include "model_check.h"

namespace shardtrain {
namespace {

using testing::parse_model;

config::LayerConfig parse_layer(const std::string& text) {
  config::LayerConfig cfg;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &cfg)) << text;
  return cfg;
}

using Strings = std::vector<std::string>;

// nanoGPT's value and parameter names, with each residual add and the LayerNorm that reads
// it as one residual_layer_norm node writing both values (the first ln_1 and the last res_2
// have no partner and stay plain).
TEST(TransformerBlock, ExpandsToNanoGptNamesAndWiring) {
  auto nodes = expand_transformer_block(parse_layer("name: 'h' transformer_block { n_head: 2 count: 2 }"), "h", 2,
                                        "x", 8);
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  struct Want {
    std::string name, type;
    Strings inputs, outputs;
  };
  const std::vector<Want> want = {
      {"h.0.ln_1", "layer_norm", {"x"}, {"h.0.ln_1"}},
      {"h.0.attn.c_attn", "linear", {"h.0.ln_1"}, {"h.0.attn.c_attn"}},
      {"h.0.attn", "causal_self_attention", {"h.0.attn.c_attn"}, {"h.0.attn"}},
      {"h.0.attn.c_proj", "linear", {"h.0.attn"}, {"h.0.attn.c_proj"}},
      {"h.0.ln_2", "residual_layer_norm", {"x", "h.0.attn.c_proj"}, {"h.0.res_1", "h.0.ln_2"}},
      {"h.0.mlp.c_fc", "linear", {"h.0.ln_2"}, {"h.0.mlp.c_fc"}},  // with GELU (tanh) fused
      {"h.0.mlp.c_proj", "linear", {"h.0.mlp.c_fc"}, {"h.0.mlp.c_proj"}},
      {"h.1.ln_1", "residual_layer_norm", {"h.0.res_1", "h.0.mlp.c_proj"}, {"h.0.res_2", "h.1.ln_1"}},
      {"h.1.attn.c_attn", "linear", {"h.1.ln_1"}, {"h.1.attn.c_attn"}},
      {"h.1.attn", "causal_self_attention", {"h.1.attn.c_attn"}, {"h.1.attn"}},
      {"h.1.attn.c_proj", "linear", {"h.1.attn"}, {"h.1.attn.c_proj"}},
      {"h.1.ln_2", "residual_layer_norm", {"h.0.res_2", "h.1.attn.c_proj"}, {"h.1.res_1", "h.1.ln_2"}},
      {"h.1.mlp.c_fc", "linear", {"h.1.ln_2"}, {"h.1.mlp.c_fc"}},
      {"h.1.mlp.c_proj", "linear", {"h.1.mlp.c_fc"}, {"h.1.mlp.c_proj"}},
      {"h.1.res_2", "add", {"h.1.res_1", "h.1.mlp.c_proj"}, {"h.1.res_2"}},
  };
  ASSERT_EQ(nodes->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const NodeConfig& n = (*nodes)[i];
    SCOPED_TRACE(want[i].name);
    EXPECT_EQ(n.name, want[i].name);
    EXPECT_EQ(n.layer.name(), want[i].name);  // parameters are named after it
    EXPECT_EQ(config::LayerConfig::descriptor()->FindFieldByNumber(n.layer.type_case())->name(), want[i].type);
    EXPECT_EQ(n.inputs, want[i].inputs);
    EXPECT_EQ(n.outputs, want[i].outputs);
    EXPECT_EQ(n.where, "model.layer[2] (" + want[i].name + ")");
  }
  // Widths, heads, GELU's tanh form and GPT-2's init: N(0, 0.02) and, for the projections
  // into the residual stream, 0.02 / sqrt(2 * count).
  const config::LayerConfig& c_attn = (*nodes)[1].layer;
  EXPECT_EQ(c_attn.linear().out_features(), 24);
  EXPECT_FLOAT_EQ(c_attn.linear().init_std(), 0.02f);
  EXPECT_TRUE(c_attn.linear().bias());
  EXPECT_EQ((*nodes)[2].layer.causal_self_attention().n_head(), 2);
  EXPECT_EQ((*nodes)[3].layer.linear().out_features(), 8);
  EXPECT_FLOAT_EQ((*nodes)[3].layer.linear().init_std(), 0.01f);
  EXPECT_FLOAT_EQ((*nodes)[4].layer.residual_layer_norm().eps(), 1e-5f);
  EXPECT_EQ((*nodes)[5].layer.linear().out_features(), 32);
  EXPECT_FLOAT_EQ((*nodes)[5].layer.linear().init_std(), 0.02f);
  EXPECT_EQ((*nodes)[5].layer.linear().activation(), config::LinearConfig::ACTIVATION_GELU_TANH);
  EXPECT_EQ((*nodes)[1].layer.linear().activation(), config::LinearConfig::ACTIVATION_NONE);
  EXPECT_EQ((*nodes)[6].layer.linear().out_features(), 8);
  EXPECT_FLOAT_EQ((*nodes)[6].layer.linear().init_std(), 0.01f);
}

TEST(TransformerBlock, DropoutMlpRatioAndOutputName) {
  auto nodes = expand_transformer_block(
      parse_layer("transformer_block { n_head: 1 count: 3 dropout: 0.1 mlp_ratio: 2 } output: 'y'"), "blk", 0, "e", 6);
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  // 11 nodes per block unfused, less the two adds the residual_layer_norm nodes absorb.
  ASSERT_EQ(nodes->size(), 3u * 11 - 2 * 3 + 1);
  EXPECT_EQ((*nodes)[4].name, "blk.0.attn.drop");
  EXPECT_EQ((*nodes)[4].inputs, Strings{"blk.0.attn.c_proj"});
  EXPECT_FLOAT_EQ((*nodes)[4].layer.dropout().p(), 0.1f);
  EXPECT_EQ((*nodes)[5].inputs, (Strings{"e", "blk.0.attn.drop"}));
  EXPECT_EQ((*nodes)[6].layer.linear().out_features(), 12);
  EXPECT_FLOAT_EQ((*nodes)[3].layer.linear().init_std(), static_cast<float>(0.02 / std::sqrt(6.0)));
  EXPECT_EQ((*nodes)[8].name, "blk.0.mlp.drop");
  EXPECT_EQ((*nodes)[9].name, "blk.1.ln_1");
  EXPECT_EQ((*nodes)[9].inputs, (Strings{"blk.0.res_1", "blk.0.mlp.drop"}));
  EXPECT_EQ((*nodes)[9].outputs, (Strings{"blk.0.res_2", "blk.1.ln_1"}));
  EXPECT_EQ(nodes->back().name, "blk.2.res_2");
  EXPECT_EQ(nodes->back().inputs, (Strings{"blk.2.res_1", "blk.2.mlp.drop"}));
  EXPECT_EQ(nodes->back().outputs, Strings{"y"});
}

TEST(TransformerBlock, BadSettingsNameTheLayer) {
  struct Case {
    std::string text, message;
  };
  const Case cases[] = {
      {"transformer_block { n_head: 3 }", "model.layer[2] (h): the input's width 8 does not divide into 3 heads"},
      {"transformer_block { n_head: 0 }", "model.layer[2] (h): transformer_block.n_head must be > 0"},
      {"transformer_block { n_head: 2 count: 0 }", "model.layer[2] (h): transformer_block.count must be > 0"},
      {"transformer_block { n_head: 2 mlp_ratio: 0 }", "model.layer[2] (h): transformer_block.mlp_ratio must be > 0"},
      {"transformer_block { n_head: 2 dropout: 1 }", "model.layer[2] (h): transformer_block.dropout must be in [0, 1)"},
      {"transformer_block { n_head: 2 } input: 'a' input: 'b'", "model.layer[2] (h): transformer_block reads one input"},
  };
  for (const Case& c : cases) {
    auto nodes = expand_transformer_block(parse_layer(c.text), "h", 2, "x", 8);
    ASSERT_FALSE(nodes.ok()) << c.text;
    EXPECT_EQ(nodes.status().message(), c.message);
  }
}

TEST(TransformerBlock, InitDrawsGpt2StandardDeviations) {
  CpuBackend be(1);
  auto m = Model::build(parse_model(R"(
      layer { name: "wte" embedding { num_embeddings: 64 dim: 64 } }
      layer { name: "h" transformer_block { n_head: 4 count: 2 } }
      layer { name: "lm_head" lm_head { tied_to: "wte" } })"),
                        {{"tokens", {{4}, DType::kInt32}}, {"targets", {{4}, DType::kInt32}}}, 64, be);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  (*m)->init_params(7);
  std::vector<float> p((*m)->num_params());
  be.copy_to_host((*m)->flat_params(), p.data());
  for (const ParamInfo& info : (*m)->params()) {
    SCOPED_TRACE(info.name);
    const bool proj = info.name.find("c_proj.weight") != std::string::npos;
    const bool ln = info.name.find("ln_") != std::string::npos;
    const bool bias = info.name.find(".bias") != std::string::npos;
    const int64_t n = shape_numel(info.shape);
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; ++i) {
      sum += p[info.offset + i];
      sq += static_cast<double>(p[info.offset + i]) * p[info.offset + i];
    }
    if (bias) {  // LayerNorm and linear biases start at zero
      EXPECT_EQ(sq, 0.0);
    } else if (ln) {  // LayerNorm weights at one
      EXPECT_EQ(sum, static_cast<double>(n));
      EXPECT_EQ(sq, static_cast<double>(n));
    } else {
      const double want = proj ? 0.02 / std::sqrt(2.0 * 2) : 0.02;
      EXPECT_EQ(info.init.kind, ParamInit::kNormal);
      EXPECT_NEAR(info.init.value, want, 1e-7);
      const double std = std::sqrt(sq / n - (sum / n) * (sum / n));
      EXPECT_NEAR(std, want, 0.05 * want) << n << " draws";  // >= 2048 draws: ~1.6% sampling error
    }
  }
}

// ------------------------------------------------------------------- build errors

const std::vector<ModelInput> kTokens8 = {{"tokens", {{8}, DType::kInt32}}, {"targets", {{8}, DType::kInt32}}};

// Builds `layers` on 8-token sequences; returns the error message ("" if it built).
std::string build_error(const std::string& layers) {
  CpuBackend be(1);
  auto m = Model::build(parse_model(layers), kTokens8, 16, be);
  return m.ok() ? "" : m.status().message();
}

const char* kWte = R"(layer { name: "wte" embedding { num_embeddings: 16 dim: 4 pad_to: 1 } } )";

TEST(GraphErrors, SequenceLongerThanPositionEmbedding) {
  const std::string e = build_error(std::string(kWte) + R"(layer { name: "wpe" position_embedding { max_seq: 6 } })");
  EXPECT_NE(e.find("model.layer[1] (wpe)"), std::string::npos) << e;
  EXPECT_NE(e.find("sequences of 8 positions"), std::string::npos) << e;
  EXPECT_NE(e.find("max_seq 6"), std::string::npos) << e;
}

TEST(GraphErrors, EmbeddingOfFloatValues) {
  const std::string e = build_error(std::string(kWte) + R"(layer { name: "again" embedding { num_embeddings: 4 dim: 4 } })");
  EXPECT_NE(e.find("model.layer[1] (again): embedding reads one int32 value of token ids"), std::string::npos) << e;
}

TEST(GraphErrors, AddNeedsTwoInputs) {
  const std::string one = build_error(std::string(kWte) + R"(layer { name: "r" add {} input: "wte" })");
  EXPECT_NE(one.find("model.layer[1] (r): add takes two inputs, got 1"), std::string::npos) << one;
  const std::string none = build_error(std::string(kWte) + R"(layer { name: "r" add {} })");
  EXPECT_NE(none.find("model.layer[1] (r): add needs two named inputs"), std::string::npos) << none;
}

TEST(GraphErrors, UnknownValue) {
  const char* want = "input 'nope' is neither a data field nor the output of an earlier layer";
  const std::string e = build_error(std::string(kWte) + R"(layer { name: "fc" linear { out_features: 16 } input: "nope" })");
  EXPECT_NE(e.find(std::string("model.layer[1] (fc): ") + want), std::string::npos) << e;
  // A later layer's output is not readable yet: nodes run in config order.
  const std::string later = build_error(R"(layer { name: "r" add {} input: "tokens" input: "wte" } )" + std::string(kWte));
  EXPECT_NE(later.find("model.layer[0] (r): input 'wte' is neither"), std::string::npos) << later;
  // A transformer_block says the same, not something about its width.
  const std::string block = build_error(std::string(kWte) + R"(layer { name: "h" transformer_block { n_head: 2 } input: "nope" })");
  EXPECT_NE(block.find(std::string("model.layer[1] (h): ") + want), std::string::npos) << block;
}

TEST(GraphErrors, DuplicateNames) {
  const std::string out = build_error(std::string(kWte) + R"(
      layer { name: "a" linear { out_features: 4 } output: "x" }
      layer { name: "b" linear { out_features: 4 } input: "wte" output: "x" })");
  EXPECT_NE(out.find("model.layer[2] (b): output 'x' is already a value of the model"), std::string::npos) << out;
  const std::string field = build_error(std::string(kWte) + R"(layer { name: "a" linear { out_features: 4 } output: "targets" })");
  EXPECT_NE(field.find("model.layer[1] (a): output 'targets' is already a value"), std::string::npos) << field;
  // Layer names are unique in a valid config, but a block's expanded names can collide.
  const std::string layer = build_error(std::string(kWte) + R"(
      layer { name: "h.0.ln_1" layer_norm {} }
      layer { name: "h" transformer_block { n_head: 2 } })");
  EXPECT_NE(layer.find("model.layer[2] (h.0.ln_1)"), std::string::npos) << layer;
  EXPECT_NE(layer.find("two parameters named h.0.ln_1.weight"), std::string::npos) << layer;
}

TEST(GraphErrors, LmHeadTiedToAMissingTable) {
  const std::string e = build_error(std::string(kWte) + R"(layer { name: "lm_head" lm_head { tied_to: "wfe" } })");
  EXPECT_NE(e.find("model.layer[1] (lm_head)"), std::string::npos) << e;
  EXPECT_NE(e.find("wfe.weight"), std::string::npos) << e;
}

// ------------------------------------------------ values read by several layers

const std::vector<ModelInput> kFeatures = {{"feat", {{6}, DType::kFloat32}}, {"labels", {{}, DType::kInt32}}};
const std::vector<float> kFeat = testing::random_uniform(3 * 6, -1.0f, 1.0f, 8);
const std::vector<int32_t> kLabels = {2, 0, 1};

void check_graph_gradients(const std::string& layers, const Strings& zero = {}) {
  CpuBackend be(1);
  auto m = Model::build(parse_model(layers), kFeatures, 3, be);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  testing::randomize_params(**m, 0.8f, 9);
  testing::GradCheckOptions opt;
  opt.atol = 1e-4;
  testing::check_model_gradients(**m, {kFeat.data(), kLabels.data()}, 3, opt, zero);
}

TEST(GraphGradients, ValueReadByThreeLayersGetsTheSumOfTheirGradients) {
  // x feeds a, b and c (and a layer whose output nothing reads: no gradient from it).
  check_graph_gradients(R"(
      layer { name: "x" linear { out_features: 5 } }
      layer { name: "a" linear { out_features: 3 } input: "x" }
      layer { name: "unused" linear { out_features: 2 } input: "x" }
      layer { name: "b" gelu { tanh: true } input: "x" }
      layer { name: "b2" linear { out_features: 3 } }
      layer { name: "c" linear { out_features: 3 } input: "x" }
      layer { name: "ab" add {} input: "a" input: "b2" }
      layer { name: "abc" add {} input: "ab" input: "c" })",
                        {"unused.weight", "unused.bias"});
}

TEST(GraphGradients, AddOfAValueWithItself) {
  check_graph_gradients(R"(
      layer { name: "x" linear { out_features: 4 } }
      layer { name: "xx" add {} input: "x" input: "x" }
      layer { name: "head" linear { out_features: 3 } })");
}

TEST(GraphGradients, ResidualStreamAcrossTwoAdds) {
  // x -> r1 = x + f(x) -> r2 = r1 + g(r1): x and r1 each read twice, as in a block.
  check_graph_gradients(R"(
      layer { name: "x" linear { out_features: 4 } }
      layer { name: "f" linear { out_features: 4 } }
      layer { name: "r1" add {} input: "x" input: "f" }
      layer { name: "g" gelu { tanh: true } }
      layer { name: "g2" linear { out_features: 4 } }
      layer { name: "r2" add {} input: "r1" input: "g2" }
      layer { name: "head" linear { out_features: 3 } })");
}

}  // namespace
}  // namespace shardtrain

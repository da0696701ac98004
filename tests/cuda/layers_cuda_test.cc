// Every layer type, and two small models (a CNN, a GPT), on the GPU against the CPU: the
// same config (built through the layer registry / Model::build), the same parameters and
// inputs, then outputs, input gradients and parameter gradients compared. Skips with the
// reason on a machine without a usable GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "backend_compare.h"
#include "config/config.h"
#include "layers/registry.h"
#include "model/model.h"

namespace shardtrain {
namespace {

using testing::expect_close;
using testing::expect_same;
using testing::rms;
using testing::rnd;

class CudaLayersTest : public testing::CudaVsCpuTest {};

// What one backend computed for a layer.
struct LayerRun {
  std::vector<std::vector<float>> y, dx;  // per output / per float input
  std::vector<float> grads;               // the store's flat gradient buffer
};

// One input of a layer under test: float values (gradients compared) or int32 ids.
struct Input {
  Shape sample;
  std::vector<float> values;
  std::vector<int32_t> ids;
};

config::LayerConfig parse_layer(const std::string& text) {
  auto cfg = parse_config_text("model { layer { " + text + " } } train { steps: 1 }", "test");
  EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
  return cfg.ok() ? cfg->model().layer(0) : config::LayerConfig();
}

std::vector<ValueSpec> specs_of(const std::vector<Input>& in) {
  std::vector<ValueSpec> s;
  for (const Input& i : in) s.push_back({i.sample, i.ids.empty() ? DType::kFloat32 : DType::kInt32});
  return s;
}

Shape batched(int64_t batch, const Shape& s) {
  Shape full{batch};
  full.insert(full.end(), s.begin(), s.end());
  return full;
}

// Builds the layer from `cfg` on `be` with `params` (its flat parameter buffer), runs
// forward and backward (every float input's gradient) and returns what came out. The
// store's gradients start at 123: backward adds to them, on both backends alike.
LayerRun run_layer(Backend& be, const config::LayerConfig& cfg, const std::vector<Input>& inputs, int64_t batch,
                   const ForwardContext& ctx, const std::vector<float>& params,
                   const std::vector<std::vector<float>>& dy_host) {
  LayerRun r;
  LayerBuildContext lc;
  lc.num_classes = 10;
  auto made = make_layer(cfg, 2, be, lc);
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  if (!made.ok()) return r;
  Layer& layer = **made;
  ParamStore store(be);
  auto out = layer.configure(specs_of(inputs), store);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return r;
  store.allocate();
  if (store.num_params() > 0) be.copy_from_host(store.flat_params(), params.data());
  be.fill(store.flat_grads(), 123.0f);
  std::vector<Tensor> xs, dxs, ys, dys;
  for (const Input& in : inputs) {
    if (!in.ids.empty()) {
      xs.push_back(be.alloc(batched(batch, in.sample), DType::kInt32));
      be.copy_from_host(xs.back(), in.ids.data());
      dxs.push_back(Tensor());
    } else {
      xs.push_back(testing::upload(be, in.values, batched(batch, in.sample)));
      dxs.push_back(be.alloc(batched(batch, in.sample), DType::kFloat32));
    }
  }
  for (size_t o = 0; o < out->size(); ++o) {
    ys.push_back(be.alloc(batched(batch, (*out)[o].shape), (*out)[o].dtype));
    dys.push_back(testing::upload(be, dy_host[o], batched(batch, (*out)[o].shape)));
  }
  ConstTensors in_p, out_p, dout_p;
  MutTensors y_p, din_p;
  for (Tensor& x : xs) in_p.push_back(&x);
  for (Tensor& y : ys) {
    out_p.push_back(&y);
    y_p.push_back(&y);
  }
  for (Tensor& d : dys) dout_p.push_back(&d);
  for (Tensor& d : dxs) din_p.push_back(d.defined() ? &d : nullptr);
  layer.forward(ctx, in_p, y_p);
  layer.backward(ctx, in_p, out_p, dout_p, din_p);
  for (Tensor& y : ys) r.y.push_back(testing::download(be, y));
  for (Tensor& d : dxs)
    if (d.defined()) r.dx.push_back(testing::download(be, d));
  if (store.num_params() > 0) r.grads = testing::download(be, store.flat_grads());
  return r;
}

TEST_F(CudaLayersTest, EveryLayerTypeMatchesTheCpu) {
  struct Case {
    std::string config;
    std::vector<Shape> samples;  // float inputs (an empty shape list entry never occurs)
    int64_t batch;
    bool ids = false;            // the single input is token ids in [0, 50)
  };
  const Case cases[] = {
      {"linear { out_features: 7 }", {{13}}, 5},
      {"linear { out_features: 3 bias: false }", {{40}}, 9},
      {"linear { out_features: 24 init_std: 0.02 }", {{5, 16}}, 3},  // a sequence [T, D]
      {"conv2d { out_channels: 4 kernel_size: 3 stride: 2 padding: 1 }", {{3, 9, 8}}, 3},
      {"conv2d { out_channels: 2 kernel_size: 2 bias: false }", {{2, 6, 7}}, 2},
      // 28x28 outputs: 2 samples per im2col chunk, so dW and db accumulate over 3 chunks.
      {"conv2d { out_channels: 3 kernel_size: 3 padding: 1 }", {{1, 28, 28}}, 5},
      {"max_pool2d { kernel_size: 3 stride: 2 }", {{2, 9, 9}}, 3},
      {"max_pool2d { kernel_size: 2 }", {{3, 8, 6}}, 2},
      {"flatten {}", {{2, 3, 4}}, 3},
      {"relu {}", {{5, 7}}, 4},
      {"gelu {}", {{5, 7}}, 4},
      {"gelu { tanh: true }", {{5, 7}}, 4},
      {"dropout { p: 0.3 }", {{6, 10}}, 8},
      {"layer_norm {}", {{7, 48}}, 3},
      {"residual_layer_norm {}", {{7, 48}, {7, 48}}, 3},  // two outputs: sum and y
      {"causal_self_attention { n_head: 2 }", {{19, 3 * 64}}, 2},  // head_dim 32, T not a tile multiple
      {"position_embedding { max_seq: 16 }", {{11, 8}}, 3},
      {"add {}", {{4, 9}, {4, 9}}, 3},
      {"embedding { num_embeddings: 50 dim: 12 }", {{9}}, 4, true},
  };
  ForwardContext ctx;  // training mode, as in a real step (dropout keyed by seed and step)
  ctx.training = true;
  ctx.seed = 17;
  ctx.step = 3;
  ctx.sample_offset = 8;
  ctx.global_batch = 32;
  uint32_t seed = 900;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.config);
    const config::LayerConfig cfg = parse_layer(c.config);
    std::vector<Input> inputs;
    for (const Shape& s : c.samples) {
      Input in{s, {}, {}};
      if (c.ids) {
        std::mt19937 gen(seed++);
        for (int64_t i = 0; i < c.batch * shape_numel(s); ++i) in.ids.push_back(static_cast<int32_t>(gen() % 50));
      } else {
        in.values = rnd(c.batch * shape_numel(s), seed++);
      }
      inputs.push_back(std::move(in));
    }
    // Parameter and output shapes from a CPU instance; the same random values go to both.
    auto probe = make_layer(cfg, 2, cpu_, LayerBuildContext{10, false});
    ASSERT_TRUE(probe.ok()) << probe.status().ToString();
    ParamStore probe_store(cpu_);
    auto out = (*probe)->configure(specs_of(inputs), probe_store);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    const std::vector<float> params = rnd(probe_store.num_params(), seed++, -0.5f, 0.5f);
    std::vector<std::vector<float>> dy;
    for (const ValueSpec& o : *out) dy.push_back(rnd(c.batch * shape_numel(o.shape), seed++));

    const LayerRun want = run_layer(cpu_, cfg, inputs, c.batch, ctx, params, dy);
    const LayerRun got = run_layer(*gpu_, cfg, inputs, c.batch, ctx, params, dy);
    ASSERT_TRUE(gpu_->synchronize().ok()) << gpu_->status().ToString();
    // Sums (GEMMs, bias gradients, col2im, attention) compare with the RMS of the result
    // as the floor; elementwise layers are exact or within a few ulps of O(1) values.
    ASSERT_EQ(got.y.size(), want.y.size());
    for (size_t o = 0; o < want.y.size(); ++o) expect_close(got.y[o], want.y[o], std::max(rms(want.y[o]), 1e-2), "y");
    ASSERT_EQ(got.dx.size(), want.dx.size());
    for (size_t i = 0; i < want.dx.size(); ++i)
      expect_close(got.dx[i], want.dx[i], std::max(rms(want.dx[i]), 1e-2), "dx" + std::to_string(i));
    for (const ParamInfo& p : probe_store.params()) {
      const int64_t k = shape_numel(p.shape);
      const std::vector<float> g(got.grads.begin() + p.offset, got.grads.begin() + p.offset + k);
      const std::vector<float> w(want.grads.begin() + p.offset, want.grads.begin() + p.offset + k);
      expect_close(g, w, rms(w), p.name + " grad");
    }
    if (c.config.rfind("dropout", 0) == 0) {  // the same elements dropped
      for (size_t i = 0; i < want.y[0].size(); ++i) ASSERT_EQ(got.y[0][i] == 0.0f, want.y[0][i] == 0.0f) << i;
    }
  }
}

// Every parameter gradient of the GPU model against the CPU model's.
void expect_same_gradients(Model& gpu_model, Model& cpu_model) {
  const auto gpu_grads = testing::download(gpu_model.backend(), gpu_model.flat_grads());
  const auto cpu_grads = testing::download(cpu_model.backend(), cpu_model.flat_grads());
  for (const ParamInfo& p : cpu_model.params()) {
    const int64_t k = shape_numel(p.shape);
    const std::vector<float> g(gpu_grads.begin() + p.offset, gpu_grads.begin() + p.offset + k);
    const std::vector<float> c(cpu_grads.begin() + p.offset, cpu_grads.begin() + p.offset + k);
    expect_close(g, c, rms(c), p.name + " grad");
  }
}

// tiny_cnn's model (configs/tiny_cnn.pbtxt): conv (stride 2, padding 1), relu, pool,
// flatten, linear, gelu, dropout (training), linear; softmax cross-entropy.
const char* kTinyCnn = R"(
  model {
    layer { name: "conv1" conv2d { out_channels: 4 kernel_size: 3 stride: 2 padding: 1 } }
    layer { name: "relu1" relu {} }
    layer { name: "pool1" max_pool2d { kernel_size: 2 } }
    layer { name: "flatten" flatten {} }
    layer { name: "fc1" linear { out_features: 16 } }
    layer { name: "act" gelu {} }
    layer { name: "drop" dropout { p: 0.2 } }
    layer { name: "fc2" linear { out_features: 10 } }
  }
  train { steps: 1 })";

TEST_F(CudaLayersTest, TinyModelForwardBackwardMatchesTheCpu) {
  auto cfg = parse_config_text(kTinyCnn, "tiny_cnn");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  const std::vector<ModelInput> inputs = {{"images", {{1, 28, 28}, DType::kFloat32}},
                                          {"labels", {{}, DType::kInt32}}};
  auto cpu_model = Model::build(cfg->model(), inputs, 10, cpu_);
  auto gpu_model = Model::build(cfg->model(), inputs, 10, *gpu_);
  ASSERT_TRUE(cpu_model.ok()) << cpu_model.status().ToString();
  ASSERT_TRUE(gpu_model.ok()) << gpu_model.status().ToString();
  (*cpu_model)->init_params(11);
  (*gpu_model)->init_params(11);
  expect_same(testing::download(*gpu_, (*gpu_model)->flat_params()),
              testing::download(cpu_, (*cpu_model)->flat_params()), "initial parameters");

  // A small batch keeps the longest sum (conv1's dW: batch * 14 * 14 terms) short enough
  // that summation-order differences stay well inside 1e-5.
  const int64_t n = 6;
  const auto images = rnd(n * 28 * 28, 1000, -1.0f, 2.0f);
  std::vector<int32_t> labels(n);
  std::mt19937 gen(1001);
  for (int32_t& l : labels) l = static_cast<int32_t>(gen() % 10);
  ForwardContext ctx;
  ctx.training = true;
  ctx.seed = 11;
  ctx.step = 4;
  ctx.global_batch = n;
  ctx.grad_scale = 1.0f / n;
  const BatchResult want = (*cpu_model)->forward_backward(ctx, {images.data(), labels.data()}, n);
  const BatchResult got = (*gpu_model)->forward_backward(ctx, {images.data(), labels.data()}, n);
  ASSERT_TRUE(gpu_->synchronize().ok()) << gpu_->status().ToString();
  EXPECT_NEAR(got.loss_sum, want.loss_sum, 1e-5 * std::fabs(want.loss_sum));
  // Exact: with random initial weights no two logits of a row are within rounding.
  EXPECT_EQ(got.correct, want.correct);
  EXPECT_EQ(got.samples, want.samples);
  expect_same_gradients(**gpu_model, **cpu_model);
}

// gpt_ref's model (configs/gpt_ref.pbtxt): a tied-embedding GPT with two blocks; also
// generation with the KV cache.
const char* kTinyGpt = R"(
  model {
    layer { name: "wte" embedding { num_embeddings: 256 dim: 32 } }
    layer { name: "wpe" position_embedding { max_seq: 16 } }
    layer { name: "h" transformer_block { n_head: 2 count: 2 } }
    layer { name: "ln_f" layer_norm {} }
    layer { name: "lm_head" lm_head { tied_to: "wte" } }
  }
  train { steps: 1 })";

TEST_F(CudaLayersTest, TinyGptForwardBackwardAndDecodeMatchTheCpu) {
  auto cfg = parse_config_text(kTinyGpt, "tiny_gpt");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  const int64_t t = 16, n = 3;
  const std::vector<ModelInput> inputs = {{"tokens", {{t}, DType::kInt32}}, {"targets", {{t}, DType::kInt32}}};
  auto cpu_model = Model::build(cfg->model(), inputs, 256, cpu_);
  auto gpu_model = Model::build(cfg->model(), inputs, 256, *gpu_);
  ASSERT_TRUE(cpu_model.ok()) << cpu_model.status().ToString();
  ASSERT_TRUE(gpu_model.ok()) << gpu_model.status().ToString();
  (*cpu_model)->init_params(5);
  (*gpu_model)->init_params(5);
  std::vector<int32_t> tokens(n * t), targets(n * t);
  std::mt19937 gen(77);
  for (int32_t& v : tokens) v = static_cast<int32_t>(gen() % 256);
  for (int32_t& v : targets) v = static_cast<int32_t>(gen() % 256);
  ForwardContext ctx;
  ctx.training = true;
  ctx.global_batch = n;
  ctx.grad_scale = 1.0f / n;
  const BatchResult want = (*cpu_model)->forward_backward(ctx, {tokens.data(), targets.data()}, n);
  const BatchResult got = (*gpu_model)->forward_backward(ctx, {tokens.data(), targets.data()}, n);
  ASSERT_TRUE(gpu_->synchronize().ok()) << gpu_->status().ToString();
  EXPECT_NEAR(got.loss_sum, want.loss_sum, 1e-5 * std::fabs(want.loss_sum));
  EXPECT_EQ(got.predictions, want.predictions);
  expect_same_gradients(**gpu_model, **cpu_model);
  // Generation: a prefill of 5 positions, then one position at a time, with the cache.
  for (int64_t pos = 0; pos < 9;) {
    const int64_t step = pos == 0 ? 5 : 1;
    std::vector<int32_t> chunk;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < step; ++i) chunk.push_back(tokens[b * t + pos + i]);
    auto cl = (*cpu_model)->decode(chunk.data(), n, step, pos);
    auto gl = (*gpu_model)->decode(chunk.data(), n, step, pos);
    ASSERT_TRUE(cl.ok() && gl.ok()) << gl.status().ToString();
    expect_close(*gl, *cl, rms(*cl), "decode logits at position " + std::to_string(pos + step - 1));
    pos += step;
  }
}

}  // namespace
}  // namespace shardtrain

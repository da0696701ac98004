// Every layer type, and a small model, on the GPU against the CPU: the same config (built
// through the layer registry / Model::build), the same parameters and inputs, then
// outputs, input gradients and parameter gradients compared. Skips with the reason on a
// machine without a usable GPU.
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
  std::vector<float> y, dx;
  std::vector<std::vector<float>> grads;
};

config::LayerConfig parse_layer(const std::string& text) {
  auto cfg = parse_config_text("model { layer { " + text + " } } train { steps: 1 }", "test");
  EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
  return cfg.ok() ? cfg->model().layer(0) : config::LayerConfig();
}

// Builds the layer from `cfg` on `be`, binds `params`, runs forward and backward (with dx)
// and returns what came out.
LayerRun run_layer(Backend& be, const config::LayerConfig& cfg, const Shape& sample, int64_t batch,
                   const ForwardContext& ctx, const std::vector<std::vector<float>>& params,
                   const std::vector<float>& x_host, const std::vector<float>& dy_host) {
  LayerRun r;
  auto made = make_layer(cfg, 2, be);
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  if (!made.ok()) return r;
  Layer& layer = **made;
  auto out = layer.configure(sample);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return r;
  std::vector<Tensor> ps, gs;
  for (size_t i = 0; i < params.size(); ++i) {
    ps.push_back(testing::upload(be, params[i], layer.param_specs()[i].shape));
    gs.push_back(be.alloc(layer.param_specs()[i].shape, DType::kFloat32));
    be.fill(gs.back(), 123.0f);  // backward overwrites stale gradients
  }
  layer.bind(ps, gs);
  Shape in_shape{batch}, out_shape{batch};
  in_shape.insert(in_shape.end(), sample.begin(), sample.end());
  out_shape.insert(out_shape.end(), out->begin(), out->end());
  Tensor x = testing::upload(be, x_host, in_shape), y = be.alloc(out_shape, DType::kFloat32);
  Tensor dy = testing::upload(be, dy_host, out_shape), dx = be.alloc(in_shape, DType::kFloat32);
  layer.forward(ctx, x, y);
  layer.backward(ctx, x, y, dy, &dx);
  r.y = testing::download(be, y);
  r.dx = testing::download(be, dx);
  for (const Tensor& g : gs) r.grads.push_back(testing::download(be, g));
  return r;
}

TEST_F(CudaLayersTest, EveryLayerTypeMatchesTheCpu) {
  struct Case {
    std::string config;
    Shape sample;
    int64_t batch;
  };
  const Case cases[] = {
      {"linear { out_features: 7 }", {13}, 5},
      {"linear { out_features: 3 bias: false }", {40}, 9},
      {"conv2d { out_channels: 4 kernel_size: 3 stride: 2 padding: 1 }", {3, 9, 8}, 3},
      {"conv2d { out_channels: 2 kernel_size: 2 bias: false }", {2, 6, 7}, 2},
      // 28x28 outputs: 2 samples per im2col chunk, so dW and db accumulate over 3 chunks.
      {"conv2d { out_channels: 3 kernel_size: 3 padding: 1 }", {1, 28, 28}, 5},
      {"max_pool2d { kernel_size: 3 stride: 2 }", {2, 9, 9}, 3},
      {"max_pool2d { kernel_size: 2 }", {3, 8, 6}, 2},
      {"flatten {}", {2, 3, 4}, 3},
      {"relu {}", {5, 7}, 4},
      {"gelu {}", {5, 7}, 4},
      {"dropout { p: 0.3 }", {6, 10}, 8},
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
    // Parameter shapes from a CPU instance; the same random values go to both backends.
    auto probe = make_layer(cfg, 2, cpu_);
    ASSERT_TRUE(probe.ok()) << probe.status().ToString();
    auto out = (*probe)->configure(c.sample);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    std::vector<std::vector<float>> params;
    for (const ParamSpec& s : (*probe)->param_specs()) params.push_back(rnd(shape_numel(s.shape), seed++, -0.5f, 0.5f));
    const auto x = rnd(c.batch * shape_numel(c.sample), seed++);
    const auto dy = rnd(c.batch * shape_numel(*out), seed++);

    const LayerRun want = run_layer(cpu_, cfg, c.sample, c.batch, ctx, params, x, dy);
    const LayerRun got = run_layer(*gpu_, cfg, c.sample, c.batch, ctx, params, x, dy);
    ASSERT_TRUE(gpu_->synchronize().ok()) << gpu_->status().ToString();
    // Sums (GEMMs, bias gradients, col2im) compare with the RMS of the result as the
    // floor; elementwise layers are exact or within a few ulps of O(1) values.
    expect_close(got.y, want.y, std::max(rms(want.y), 1e-2), "y");
    expect_close(got.dx, want.dx, std::max(rms(want.dx), 1e-2), "dx");
    ASSERT_EQ(got.grads.size(), want.grads.size());
    for (size_t i = 0; i < want.grads.size(); ++i)
      expect_close(got.grads[i], want.grads[i], rms(want.grads[i]), (*probe)->param_specs()[i].name + " grad");
    if (c.config.rfind("dropout", 0) == 0) {  // the same elements dropped
      for (size_t i = 0; i < want.y.size(); ++i) ASSERT_EQ(got.y[i] == 0.0f, want.y[i] == 0.0f) << i;
    }
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
  const Shape sample{1, 28, 28};
  auto cpu_model = Model::build(cfg->model(), sample, 10, cpu_);
  auto gpu_model = Model::build(cfg->model(), sample, 10, *gpu_);
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
  const BatchResult want = (*cpu_model)->forward_backward(ctx, images.data(), labels.data(), n, 1.0f / n);
  const BatchResult got = (*gpu_model)->forward_backward(ctx, images.data(), labels.data(), n, 1.0f / n);
  ASSERT_TRUE(gpu_->synchronize().ok()) << gpu_->status().ToString();
  EXPECT_NEAR(got.loss_sum, want.loss_sum, 1e-5 * std::fabs(want.loss_sum));
  // Exact: with random initial weights no two logits of a row are within rounding.
  EXPECT_EQ(got.correct, want.correct);
  EXPECT_EQ(got.samples, want.samples);
  const auto gpu_grads = testing::download(*gpu_, (*gpu_model)->flat_grads());
  const auto cpu_grads = testing::download(cpu_, (*cpu_model)->flat_grads());
  for (const ParamInfo& p : (*cpu_model)->params()) {
    const int64_t k = shape_numel(p.shape);
    const std::vector<float> g(gpu_grads.begin() + p.offset, gpu_grads.begin() + p.offset + k);
    const std::vector<float> c(cpu_grads.begin() + p.offset, cpu_grads.begin() + p.offset + k);
    expect_close(g, c, rms(c), p.name + " grad");
  }
}

}  // namespace
}  // namespace shardtrain

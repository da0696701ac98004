// Finite-difference gradient checks for every layer: input gradients and parameter
// gradients against central differences of L = sum(y * r).
#include <gtest/gtest.h>

#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "layers/activation.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "grad_check.h"
#include "layers/linear.h"
#include "layers/max_pool2d.h"

namespace shardtrain {
namespace {

using testing::check_layer_gradients;

ForwardContext train_ctx() {
  ForwardContext ctx;
  ctx.training = true;
  ctx.seed = 42;
  ctx.step = 3;
  ctx.sample_offset = 0;
  ctx.global_batch = 3;
  return ctx;
}

// Distinct values spaced 0.05 apart (> 2 eps) in random order: no max-pool ties or near-ties.
std::vector<float> distinct_values(int64_t n) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = 0.05f * static_cast<float>(i - n / 2);
  std::mt19937 gen(5);
  std::shuffle(v.begin(), v.end(), gen);
  return v;
}

// Magnitudes in [0.1, 1] with random sign: central differences never cross ReLU's kink.
std::vector<float> away_from_zero(int64_t n) {
  auto v = testing::random_uniform(n, 0.1f, 1.0f, 3);
  auto s = testing::random_uniform(n, -1.0f, 1.0f, 4);
  for (int64_t i = 0; i < n; ++i) v[i] = s[i] < 0 ? -v[i] : v[i];
  return v;
}

TEST(LayerGrad, Linear) {
  CpuBackend be(1);
  LinearLayer layer("fc", be, 5, true);
  check_layer_gradients(layer, be, {7}, 3, train_ctx());
}

TEST(LayerGrad, LinearNoBias) {
  CpuBackend be(1);
  LinearLayer layer("fc", be, 4, false);
  check_layer_gradients(layer, be, {6}, 2, train_ctx());
  EXPECT_EQ(layer.param_ids().size(), 1u);
}

TEST(LayerGrad, Conv2dPadded) {
  CpuBackend be(1);
  Conv2dLayer layer("conv", be, 3, 3, 1, 1, true);
  check_layer_gradients(layer, be, {2, 5, 5}, 2, train_ctx());
}

TEST(LayerGrad, Conv2dStridedNonSquare) {
  CpuBackend be(2);
  Conv2dLayer layer("conv", be, 2, 3, 2, 1, true);
  check_layer_gradients(layer, be, {3, 7, 6}, 2, train_ctx());
}

TEST(LayerGrad, Conv2dNoPaddingNoBias) {
  CpuBackend be(1);
  Conv2dLayer layer("conv", be, 4, 2, 1, 0, false);
  check_layer_gradients(layer, be, {2, 4, 5}, 3, train_ctx());
}

TEST(LayerGrad, MaxPool2d) {
  CpuBackend be(1);
  MaxPool2dLayer layer("pool", be, 2, 2);
  check_layer_gradients(layer, be, {2, 4, 6}, 2, train_ctx(), distinct_values(2 * 2 * 4 * 6));
}

TEST(LayerGrad, MaxPool2dOverlapping) {
  CpuBackend be(2);
  MaxPool2dLayer layer("pool", be, 3, 2);
  check_layer_gradients(layer, be, {2, 7, 5}, 2, train_ctx(), distinct_values(2 * 2 * 7 * 5));
}

TEST(LayerGrad, Flatten) {
  CpuBackend be(1);
  FlattenLayer layer("flat", be);
  check_layer_gradients(layer, be, {2, 3, 4}, 2, train_ctx());
}

TEST(LayerGrad, Relu) {
  CpuBackend be(1);
  ActivationLayer layer("relu", be, Activation::kRelu);
  check_layer_gradients(layer, be, {3, 5}, 2, train_ctx(), away_from_zero(30));
}

TEST(LayerGrad, Gelu) {
  CpuBackend be(1);
  ActivationLayer layer("gelu", be, Activation::kGelu);
  auto x = testing::random_uniform(40, -3.0f, 3.0f, 9);
  check_layer_gradients(layer, be, {20}, 2, train_ctx(), x);
}

TEST(LayerGrad, DropoutTraining) {
  CpuBackend be(1);
  DropoutLayer layer("drop", be, 0.3f);
  layer.set_index(4);
  check_layer_gradients(layer, be, {4, 5}, 3, train_ctx());
}

TEST(LayerGrad, DropoutEval) {
  CpuBackend be(1);
  DropoutLayer layer("drop", be, 0.3f);
  ForwardContext ctx = train_ctx();
  ctx.training = false;
  check_layer_gradients(layer, be, {10}, 2, ctx);
}

}  // namespace
}  // namespace shardtrain

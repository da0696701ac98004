// Forward values of the layers against naive loops, and the dropout keying that makes a
// batch split over ranks draw the same masks as on one rank.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "grad_check.h"
#include "layers/linear.h"

namespace shardtrain {
namespace {

using testing::random_uniform;

// A unary layer configured alone: its own store, random parameters.
struct Configured {
  explicit Configured(Backend& be) : store(be) {}
  ParamStore store;
  Shape out;
  const float* param(int i) { return store.value(i).f32(); }
  const float* grad(int i) { return store.grad(i).f32(); }
};

::testing::AssertionResult configure(Layer& layer, Configured& c, const Shape& in, uint32_t seed = 21) {
  auto out = layer.configure({ValueSpec{in, DType::kFloat32}}, c.store);
  if (!out.ok()) return ::testing::AssertionFailure() << out.status().message();
  c.out = (*out)[0].shape;
  c.store.allocate();
  auto v = random_uniform(c.store.num_params(), -1.0f, 1.0f, seed);
  c.store.backend().copy_from_host(c.store.flat_params(), v.data());
  return ::testing::AssertionSuccess();
}

void forward(Layer& layer, const ForwardContext& ctx, const Tensor& x, Tensor& y) { layer.forward(ctx, {&x}, {&y}); }
void backward(Layer& layer, const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) {
  layer.backward(ctx, {&x}, {&y}, {&dy}, {dx});
}

TEST(LayerForward, LinearMatchesNaive) {
  CpuBackend be(1);
  LinearLayer layer("fc", be, 3, true);
  Configured b(be);
  ASSERT_TRUE(configure(layer, b, {4}));
  EXPECT_EQ(b.out, (Shape{3}));
  EXPECT_EQ(b.store.params()[0].name, "fc.weight");
  EXPECT_EQ(b.store.params()[0].shape, (Shape{3, 4}));
  EXPECT_EQ(b.store.params()[0].init.value, 4);
  Tensor x = be.alloc({2, 4}, DType::kFloat32), y = be.alloc({2, 3}, DType::kFloat32);
  auto xv = random_uniform(8, -1, 1, 1);
  be.copy_from_host(x, xv.data());
  forward(layer, ForwardContext{}, x, y);
  const float* w = b.param(0);
  const float* bias = b.param(1);
  for (int n = 0; n < 2; ++n)
    for (int o = 0; o < 3; ++o) {
      double ref = bias[o];
      for (int i = 0; i < 4; ++i) ref += static_cast<double>(xv[n * 4 + i]) * w[o * 4 + i];
      EXPECT_NEAR(y.f32()[n * 3 + o], ref, 1e-5);
    }
}

TEST(LayerForward, Conv2dMatchesNaive) {
  CpuBackend be(2);
  const int64_t N = 2, C = 3, H = 6, W = 5, K = 4, k = 3, s = 2, p = 1;
  Conv2dLayer layer("conv", be, K, k, s, p, true);
  Configured b(be);
  ASSERT_TRUE(configure(layer, b, {C, H, W}));
  const int64_t Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
  ASSERT_EQ(b.out, (Shape{K, Ho, Wo}));
  EXPECT_EQ(b.store.params()[0].shape, (Shape{K, C, k, k}));
  EXPECT_EQ(b.store.params()[0].init.value, C * k * k);
  Tensor x = be.alloc({N, C, H, W}, DType::kFloat32), y = be.alloc({N, K, Ho, Wo}, DType::kFloat32);
  auto xv = random_uniform(x.numel(), -1, 1, 2);
  be.copy_from_host(x, xv.data());
  forward(layer, ForwardContext{}, x, y);
  const float* w = b.param(0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < K; ++o)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          double ref = b.param(1)[o];
          for (int64_t c = 0; c < C; ++c)
            for (int64_t kh = 0; kh < k; ++kh)
              for (int64_t kw = 0; kw < k; ++kw) {
                const int64_t ih = oh * s - p + kh, iw = ow * s - p + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                ref += static_cast<double>(xv[((n * C + c) * H + ih) * W + iw]) * w[((o * C + c) * k + kh) * k + kw];
              }
          EXPECT_NEAR(y.f32()[((n * K + o) * Ho + oh) * Wo + ow], ref, 1e-5);
        }
}

// A changing batch size (training vs evaluation) must re-size the layer's scratch.
TEST(LayerForward, Conv2dBatchSizeChanges) {
  CpuBackend be(1);
  Conv2dLayer layer("conv", be, 2, 3, 1, 1, true);
  Configured c(be);
  ASSERT_TRUE(configure(layer, c, {1, 4, 4}));
  Tensor x4 = be.alloc({4, 1, 4, 4}, DType::kFloat32), y4 = be.alloc({4, 2, 4, 4}, DType::kFloat32);
  auto xv = random_uniform(x4.numel(), -1, 1, 3);
  be.copy_from_host(x4, xv.data());
  Tensor x1 = x4.rows(3, 4), y1 = be.alloc({1, 2, 4, 4}, DType::kFloat32);
  forward(layer, ForwardContext{}, x1, y1);
  forward(layer, ForwardContext{}, x4, y4);
  for (int64_t i = 0; i < y1.numel(); ++i) EXPECT_EQ(y1.f32()[i], y4.f32()[3 * 32 + i]);
}

// Conv2d works on chunks of samples (about 2048 output pixels each: two 28x28 samples).
// A batch of 5 (chunks 2, 2, 1) must give what 5 one-sample batches give: the same y and
// dx, and dW / db equal to the per-sample sums (which the single-sample layer's
// accumulating gradients add up by themselves).
TEST(LayerForward, Conv2dChunkedBatchMatchesPerSample) {
  CpuBackend be(1);
  const int64_t N = 5, C = 2, H = 28, K = 3;
  Conv2dLayer batched("conv", be, K, 3, 1, 1, true), single("conv", be, K, 3, 1, 1, true);
  Configured b(be), sc(be);
  ASSERT_TRUE(configure(batched, b, {C, H, H}));
  ASSERT_TRUE(configure(single, sc, {C, H, H}));
  be.copy(b.store.flat_params(), sc.store.flat_params());
  b.store.zero_grads();
  sc.store.zero_grads();
  const int64_t in_sz = C * H * H, out_sz = K * H * H;
  Tensor x = be.alloc({N, C, H, H}, DType::kFloat32), y = be.alloc({N, K, H, H}, DType::kFloat32);
  Tensor dy = be.alloc({N, K, H, H}, DType::kFloat32), dx = be.alloc({N, C, H, H}, DType::kFloat32);
  auto xv = random_uniform(x.numel(), -1, 1, 5), dyv = random_uniform(dy.numel(), -1, 1, 6);
  be.copy_from_host(x, xv.data());
  be.copy_from_host(dy, dyv.data());
  forward(batched, ForwardContext{}, x, y);
  backward(batched, ForwardContext{}, x, y, dy, &dx);
  for (int64_t n = 0; n < N; ++n) {
    Tensor x1 = x.rows(n, n + 1), dy1 = dy.rows(n, n + 1);
    Tensor y1 = be.alloc({1, K, H, H}, DType::kFloat32), dx1 = be.alloc({1, C, H, H}, DType::kFloat32);
    forward(single, ForwardContext{}, x1, y1);
    backward(single, ForwardContext{}, x1, y1, dy1, &dx1);
    for (int64_t i = 0; i < out_sz; ++i) ASSERT_NEAR(y.f32()[n * out_sz + i], y1.f32()[i], 1e-5);
    for (int64_t i = 0; i < in_sz; ++i) ASSERT_NEAR(dx.f32()[n * in_sz + i], dx1.f32()[i], 1e-5);
  }
  const int64_t nw = K * C * 9;
  for (int64_t i = 0; i < nw; ++i) EXPECT_NEAR(b.grad(0)[i], sc.grad(0)[i], 1e-3) << i;
  for (int64_t i = 0; i < K; ++i) EXPECT_NEAR(b.grad(1)[i], sc.grad(1)[i], 1e-3) << i;
}

std::vector<float> run_dropout(Backend& be, DropoutLayer& layer, const std::vector<float>& xv, int64_t offset,
                               int64_t rows, bool training) {
  Tensor x = be.alloc({rows, 6}, DType::kFloat32), y = be.alloc({rows, 6}, DType::kFloat32);
  be.copy_from_host(x, xv.data() + offset * 6);
  ForwardContext ctx;
  ctx.training = training;
  ctx.seed = 9;
  ctx.step = 17;
  ctx.sample_offset = offset;
  ctx.global_batch = 8;
  forward(layer, ctx, x, y);
  return std::vector<float>(y.f32(), y.f32() + y.numel());
}

TEST(LayerForward, DropoutSameMasksWhenBatchIsSplitOverRanks) {
  CpuBackend be(1);
  DropoutLayer layer("drop", be, 0.5f);
  layer.set_index(2);
  Configured c(be);
  ASSERT_TRUE(configure(layer, c, {6}));
  auto xv = random_uniform(8 * 6, 0.5f, 1.0f, 4);
  auto whole = run_dropout(be, layer, xv, 0, 8, true);
  auto rank0 = run_dropout(be, layer, xv, 0, 3, true);
  auto rank1 = run_dropout(be, layer, xv, 3, 5, true);
  rank0.insert(rank0.end(), rank1.begin(), rank1.end());
  EXPECT_EQ(whole, rank0);
  int zeros = 0;
  for (size_t i = 0; i < whole.size(); ++i) {
    if (whole[i] == 0.0f) ++zeros;
    else EXPECT_FLOAT_EQ(whole[i], 2.0f * xv[i]);
  }
  EXPECT_GT(zeros, 0);
  EXPECT_LT(zeros, 48);
  EXPECT_EQ(run_dropout(be, layer, xv, 0, 8, false), xv);  // evaluation: identity
}

TEST(LayerForward, DropoutMasksDifferByLayerAndStep) {
  CpuBackend be(1);
  DropoutLayer a("a", be, 0.5f), b("b", be, 0.5f);
  a.set_index(1);
  b.set_index(2);
  Configured ca(be), cb(be);
  ASSERT_TRUE(configure(a, ca, {6}));
  ASSERT_TRUE(configure(b, cb, {6}));
  auto xv = random_uniform(8 * 6, 0.5f, 1.0f, 4);
  EXPECT_NE(run_dropout(be, a, xv, 0, 8, true), run_dropout(be, b, xv, 0, 8, true));
}

}  // namespace
}  // namespace shardtrain

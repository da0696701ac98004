// CudaBackend against the CPU reference, part 2: im2col / col2im, max pooling, softmax
// cross-entropy, accuracy counting, the fixed-order sums, the optimizer steps and the
// gradient buckets. Skips with the reason on a machine without a usable GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>

#include "backend_compare.h"

namespace shardtrain {
namespace {

using testing::expect_close;
using testing::expect_same;
using testing::rms;
using testing::rnd;

class CudaBackendOpsTest : public testing::CudaVsCpuTest {};

ConvGeometry conv(int64_t c, int64_t h, int64_t w, int64_t k, int64_t s, int64_t p) {
  return ConvGeometry{c, h, w, k, s, p, (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1};
}
PoolGeometry pool(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t s) {
  return PoolGeometry{n, c, h, w, k, s, (h - k) / s + 1, (w - k) / s + 1};
}
std::vector<int32_t> random_labels(int64_t n, int64_t classes, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int32_t> l(n);
  for (int32_t& v : l) v = static_cast<int32_t>(gen() % classes);
  return l;
}
// Values in {-2, -1, 0, 1}: most pooling windows and logit rows hold ties.
std::vector<float> quantized(int64_t n, uint32_t seed) {
  auto v = rnd(n, seed, -2.0f, 2.0f);
  for (float& x : v) x = std::floor(x);
  return v;
}

// ------------------------------------------------------------ convolution and pooling

TEST_F(CudaBackendOpsTest, Im2colAndCol2imWithStrideAndPadding) {
  const int64_t batch = 3;
  uint32_t seed = 100;
  for (const ConvGeometry& g : {conv(3, 9, 8, 3, 2, 1), conv(2, 7, 7, 3, 1, 0), conv(1, 28, 28, 5, 2, 2),
                                conv(4, 6, 5, 2, 3, 1), conv(2, 5, 5, 5, 1, 2)}) {
    const std::string what = "C" + std::to_string(g.channels) + " " + std::to_string(g.height) + "x" +
                             std::to_string(g.width) + " k" + std::to_string(g.kernel) + " s" +
                             std::to_string(g.stride) + " p" + std::to_string(g.padding);
    const int64_t in = batch * g.channels * g.height * g.width, cols_n = g.col_rows() * batch * g.col_cols();
    const auto x = rnd(in, seed++);
    std::vector<float> cols(cols_n, 42.0f);  // stale values: im2col writes every element
    Tensor gx = up(x), gcols = up(cols);
    cpu_.im2col(x.data(), g, batch, cols.data());
    gpu_->im2col(gx.f32(), g, batch, gcols.f32());
    expect_same(down(gcols), cols, "im2col " + what);  // pure copies: exact

    const auto dcols = rnd(cols_n, seed++);
    std::vector<float> dx(in, 42.0f);
    Tensor gdcols = up(dcols), gdx = up(dx);
    cpu_.col2im(dcols.data(), g, batch, dx.data());
    gpu_->col2im(gdcols.f32(), g, batch, gdx.f32());
    // A pixel sums up to (k / s)^2 O(1) column entries, in a different order on each side.
    expect_close(down(gdx), dx, 1.0, "col2im " + what);
  }
}

TEST_F(CudaBackendOpsTest, MaxPoolOverlappingWindowsAndTies) {
  uint32_t seed = 200;
  for (const PoolGeometry& g : {pool(2, 3, 11, 10, 3, 2), pool(2, 3, 11, 10, 2, 2), pool(1, 2, 9, 9, 3, 1),
                                pool(3, 2, 10, 11, 2, 3), pool(1, 1, 4, 4, 4, 4)}) {
    const std::string what = "k" + std::to_string(g.kernel) + " s" + std::to_string(g.stride);
    const int64_t in = g.batch * g.channels * g.height * g.width;
    const int64_t out = g.batch * g.channels * g.out_height * g.out_width;
    for (bool ties : {false, true}) {
      const auto x = ties ? quantized(in, seed++) : rnd(in, seed++);
      std::vector<float> y(out);
      std::vector<int32_t> argmax(out);
      Tensor gx = up(x), gy = gpu_->alloc({out}, DType::kFloat32), ga = gpu_->alloc({out}, DType::kInt32);
      cpu_.maxpool2d_forward(x.data(), g, y.data(), argmax.data());
      gpu_->maxpool2d_forward(gx.f32(), g, gy.f32(), ga.data<int32_t>());
      expect_same(down(gy), y, "maxpool y " + what);
      expect_same(down<int32_t>(ga), argmax, "maxpool argmax (first max on ties) " + what);

      const auto dy = rnd(out, seed++);
      std::vector<float> dx(in, 42.0f);
      Tensor gdy = up(dy), gdx = up(dx);
      cpu_.maxpool2d_backward(dy.data(), argmax.data(), g, dx.data());
      gpu_->maxpool2d_backward(gdy.f32(), ga.data<int32_t>(), g, gdx.f32());
      // Overlapping windows may route several dy to one pixel: a short sum, any order.
      expect_close(down(gdx), dx, 1.0, "maxpool dx " + what);
    }
  }
}

// ------------------------------------------------------------------------------ loss

// Rows of n x ld logits whose columns [c, ld) hold `padding`, which the primitives must
// never read (NaN would poison a sum, a huge value would win an argmax).
std::vector<float> padded_rows(std::vector<float> v, int64_t n, int64_t c, int64_t ld, float padding) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = c; j < ld; ++j) v[i * ld + j] = padding;
  return v;
}

struct LossShape {
  int64_t n, c, ld;
};
std::string loss_shape_str(const LossShape& s) {
  return std::to_string(s.n) + "x" + std::to_string(s.c) + " ld " + std::to_string(s.ld);
}

TEST_F(CudaBackendOpsTest, SoftmaxCrossEntropyForwardAndBackward) {
  uint32_t seed = 300;
  // Short rows (a warp each) and vocabulary rows (a block each: c > 1024), padded or not;
  // GPT-2's 50257 classes in rows of 50304.
  for (const LossShape& s : {LossShape{37, 10, 10}, {37, 10, 16}, {5, 1000, 1024}, {1, 1, 1}, {1, 1, 64},
                             {64, 3, 3}, {300, 10, 64}, {3, 1025, 1088}, {6, 2000, 2000}, {4, 50257, 50304}}) {
    const std::string what = loss_shape_str(s);
    const int64_t n = s.n, c = s.c, ld = s.ld;
    const auto logits = padded_rows(rnd(n * ld, seed++, -8.0f, 8.0f), n, c, ld, NAN);
    const auto labels = random_labels(n, c, seed++);
    std::vector<float> stats(2 * n), losses(n), dlogits(n * ld);
    Tensor gl = up(logits), glab = up(labels), gstats = gpu_->alloc({2 * n}, DType::kFloat32);
    Tensor gloss = gpu_->alloc({n}, DType::kFloat32), gd = up(std::vector<float>(n * ld, 42.0f));
    cpu_.softmax_xent_forward(logits.data(), ld, labels.data(), n, c, stats.data(), losses.data());
    gpu_->softmax_xent_forward(gl.f32(), ld, glab.data<int32_t>(), n, c, gstats.f32(), gloss.f32());
    // The row max is exact; 1 / sum exp(z - max) agrees to a few fp32 roundings of its
    // terms (expf against glibc's, online rescaling), far inside 1e-5.
    const auto got_stats = down(gstats);
    std::vector<float> max_got, max_want, inv_got, inv_want;
    for (int64_t i = 0; i < n; ++i) {
      max_got.push_back(got_stats[2 * i]);
      max_want.push_back(stats[2 * i]);
      inv_got.push_back(got_stats[2 * i + 1]);
      inv_want.push_back(stats[2 * i + 1]);
    }
    expect_same(max_got, max_want, "row max " + what);
    expect_close(inv_got, inv_want, 0.0, "1/sum " + what);
    expect_close(down(gloss), losses, 1e-2, "losses " + what);

    const float scale = 1.0f / static_cast<float>(n);
    cpu_.softmax_xent_backward(logits.data(), ld, stats.data(), labels.data(), n, c, scale, dlogits.data());
    gpu_->softmax_xent_backward(gl.f32(), ld, gstats.f32(), glab.data<int32_t>(), n, c, scale, gd.f32());
    const auto got = down(gd);
    // p - 1 at the label cancels when p ~ 1: the floor makes the slack a few ulps of 1,
    // times the scale. Padding is exactly 0 (it held 42).
    expect_close(got, dlogits, 0.1 * scale, "dlogits " + what);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = c; j < ld; ++j) ASSERT_EQ(got[i * ld + j], 0.0f) << "padding " << what << " " << i << "," << j;

    // In place over the logits (the vocabulary case's memory saving): the same bits.
    gpu_->softmax_xent_backward(gl.f32(), ld, gstats.f32(), glab.data<int32_t>(), n, c, scale, gl.f32());
    expect_same(down(gl), got, "in-place dlogits " + what);
  }
}

TEST_F(CudaBackendOpsTest, CountCorrectWithTiesAndPaddingIsExact) {
  uint32_t seed = 400;
  for (const LossShape& s : {LossShape{5000, 10, 10}, {5000, 10, 16}, {1, 1, 1}, {7, 3, 64}, {333, 1000, 1024},
                             {64, 50257, 50304}}) {
    for (bool ties : {false, true}) {
      const int64_t n = s.n, c = s.c, ld = s.ld;
      // Padding larger than any class logit: counted, it would be every row's argmax.
      const auto logits = padded_rows(ties ? quantized(n * ld, seed++) : rnd(n * ld, seed++), n, c, ld, 1e30f);
      const auto labels = random_labels(n, c, seed++);
      Tensor gl = up(logits), glab = up(labels);
      EXPECT_EQ(gpu_->count_correct(gl.f32(), ld, glab.data<int32_t>(), n, c),
                cpu_.count_correct(logits.data(), ld, labels.data(), n, c))
          << loss_shape_str(s) << (ties ? " with ties" : "");
    }
  }
  Tensor one = gpu_->alloc({1}, DType::kFloat32), lab = gpu_->alloc({1}, DType::kInt32);
  EXPECT_EQ(gpu_->count_correct(one.f32(), 10, lab.data<int32_t>(), 0, 10), 0);
}

// ------------------------------------------------------------------------ reductions

TEST_F(CudaBackendOpsTest, SumAndSumSquaresAreAccurateAndBitwiseRepeatable) {
  uint32_t seed = 500;
  // Around the CPU's 4096-element chunk, and large enough for many blocks.
  for (int64_t n : {1, 7, 4095, 4096, 4097, 100003, 3000017}) {
    const auto x = rnd(n, seed++);
    Tensor gx = up(x);
    double abs_sum = 0.0, sq = 0.0;
    for (float v : x) {
      abs_sum += std::fabs(v);
      sq += static_cast<double>(v) * v;
    }
    // Both backends accumulate in double, so they agree far below 1e-5: the tolerance is
    // 1e-7 of the terms' total size (the sum itself may cancel to near 0).
    const double s = gpu_->sum(gx.f32(), n), s2 = gpu_->sum_squares(gx.f32(), n);
    EXPECT_NEAR(s, cpu_.sum(x.data(), n), 1e-7 * abs_sum) << n;
    EXPECT_NEAR(s2, cpu_.sum_squares(x.data(), n), 1e-7 * sq) << n;
    // Fixed reduction order: the same input gives the same bits every time.
    EXPECT_EQ(gpu_->sum(gx.f32(), n), s) << n;
    EXPECT_EQ(gpu_->sum_squares(gx.f32(), n), s2) << n;
  }
  Tensor t = gpu_->alloc({1}, DType::kFloat32);
  EXPECT_EQ(gpu_->sum(t.f32(), 0), 0.0);
  EXPECT_EQ(gpu_->sum_squares(t.f32(), 0), 0.0);
}

// ------------------------------------------------------------------------ optimizers

TEST_F(CudaBackendOpsTest, SgdStepFirstAndLaterStepsWithAndWithoutMomentum) {
  const int64_t n = 100003;
  uint32_t seed = 600;
  for (float momentum : {0.0f, 0.9f}) {
    for (float wd : {0.0f, 0.01f}) {
      const SgdParams hp{0.05f, momentum, wd};
      const std::string what = "momentum " + std::to_string(momentum) + " wd " + std::to_string(wd);
      auto p = rnd(n, seed++);
      std::vector<float> buf(n, 0.0f);
      Tensor gp = up(p), gbuf = up(buf);
      float* cpu_buf = momentum > 0 ? buf.data() : nullptr;  // null is allowed without momentum
      float* gpu_buf = momentum > 0 ? gbuf.f32() : nullptr;
      for (int step = 0; step < 4; ++step) {
        const auto g = rnd(n, seed++);
        Tensor gg = up(g);
        cpu_.sgd_step(p.data(), g.data(), cpu_buf, n, hp, step == 0);
        gpu_->sgd_step(gp.f32(), gg.f32(), gpu_buf, n, hp, step == 0);
        // p and buf are running sums (p - lr d, momentum buf + d) that may cancel to ~0:
        // the floor is their typical size.
        expect_close(down(gp), p, rms(p), what + " p, step " + std::to_string(step));
        if (momentum > 0) expect_close(down(gbuf), buf, rms(buf), what + " buf, step " + std::to_string(step));
      }
    }
  }
}

TEST_F(CudaBackendOpsTest, AdamWOverSeveralSteps) {
  const int64_t n = 100003;
  uint32_t seed = 700;
  auto p = rnd(n, seed++);
  std::vector<float> m(n, 0.0f), v(n, 0.0f);
  Tensor gp = up(p), gm = up(m), gv = up(v);
  for (int64_t step = 1; step <= 5; ++step) {
    const AdamWParams hp{1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, step};
    const auto g = rnd(n, seed++);
    Tensor gg = up(g);
    cpu_.adamw_step(p.data(), g.data(), m.data(), v.data(), n, hp);
    gpu_->adamw_step(gp.f32(), gg.f32(), gm.f32(), gv.f32(), n, hp);
    const std::string at = ", step " + std::to_string(step);
    // Running sums that may cancel (p - step, m + w (g - m)): the floor is their typical size.
    expect_close(down(gp), p, rms(p), "p" + at);
    expect_close(down(gm), m, rms(m), "m" + at);
    expect_close(down(gv), v, rms(v), "v" + at);
  }
}

// ---------------------------------------------------------------- gradient buckets

TEST_F(CudaBackendOpsTest, GradBucketPackUnpackAcrossSeveralLaunches) {
  // 150 segments (more than two launches' worth of 64), including empty ones and two
  // large ones, with 5-float gaps between them that must never be written.
  const int count = 150, gap = 5;
  std::mt19937 gen(800);
  std::vector<int64_t> sizes(count), offsets(count);
  int64_t total = 0, store_n = 0;
  for (int s = 0; s < count; ++s) {
    sizes[s] = s % 37 == 5 ? 0 : s == 20 || s == 130 ? 100000 : static_cast<int64_t>(gen() % 300) + 1;
    offsets[s] = store_n;
    store_n += sizes[s] + gap;
    total += sizes[s];
  }
  auto store = rnd(store_n, 801);
  for (int s = 0; s < count; ++s)
    for (int64_t i = 0; i < gap; ++i) store[offsets[s] + sizes[s] + i] = 99.0f;
  Tensor gstore = up(store), gflat = gpu_->alloc({total}, DType::kFloat32);
  std::vector<GradSegment> cpu_segs(count), gpu_segs(count);
  for (int s = 0; s < count; ++s) {
    cpu_segs[s] = {store.data() + offsets[s], sizes[s]};
    gpu_segs[s] = {gstore.f32() + offsets[s], sizes[s]};
  }
  std::vector<float> flat(total, 42.0f);
  cpu_.grad_bucket_pack(cpu_segs.data(), count, 0.5f, flat.data());
  gpu_->grad_bucket_pack(gpu_segs.data(), count, 0.5f, gflat.f32());
  expect_same(down(gflat), flat, "pack");  // x * 0.5 is exact

  const auto flat2 = rnd(total, 802);
  Tensor gflat2 = up(flat2);
  cpu_.grad_bucket_unpack(flat2.data(), 0.5f, cpu_segs.data(), count);
  gpu_->grad_bucket_unpack(gflat2.f32(), 0.5f, gpu_segs.data(), count);
  expect_same(down(gstore), store, "unpack (segments and the untouched gaps)");
}

}  // namespace
}  // namespace shardtrain

// Softmax cross-entropy, accuracy counting and deterministic reductions.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace shardtrain {
namespace {

TEST(CpuBackendLoss, SoftmaxXentMatchesHandComputation) {
  CpuBackend be(1);
  // Row 1 has huge logits: without max-subtraction exp() overflows to inf.
  std::vector<float> logits{1.0f, 2.0f, 3.0f, 1000.0f, 0.0f, -1000.0f};
  std::vector<int32_t> labels{2, 1};
  std::vector<float> stats(4), losses(2), d(6);
  be.softmax_xent_forward(logits.data(), 3, labels.data(), 2, 3, stats.data(), losses.data());
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_EQ(stats[0], 3.0f);  // row max
  EXPECT_NEAR(stats[1], std::exp(3.0) / z, 1e-6);  // 1 / sum exp(x - max)
  EXPECT_NEAR(losses[0], std::log(z) - 3.0, 1e-6);
  EXPECT_NEAR(losses[1], 1000.0, 1e-3);  // finite: -log softmax = 1000 - 0
  be.softmax_xent_backward(logits.data(), 3, stats.data(), labels.data(), 2, 3, 0.5f, d.data());
  EXPECT_NEAR(d[0], 0.5 * std::exp(1.0) / z, 1e-6);
  EXPECT_NEAR(d[1], 0.5 * std::exp(2.0) / z, 1e-6);
  EXPECT_NEAR(d[2], 0.5 * (std::exp(3.0) / z - 1.0), 1e-6);
  EXPECT_NEAR(d[3], 0.5, 1e-6);
  EXPECT_NEAR(d[4], -0.5, 1e-6);
  EXPECT_EQ(d[5], 0.0f);
}

TEST(CpuBackendLoss, PaddedClassColumnsAreIgnoredAndGetZeroGradient) {
  CpuBackend be(2);
  // 2 rows of 3 classes stored with row stride 5; the padding holds values that would
  // dominate the softmax if they took part.
  std::vector<float> padded{1.0f, 2.0f, 3.0f, 50.0f, -7.0f, 0.5f, -1.0f, 0.0f, 60.0f, 60.0f};
  std::vector<float> dense{1.0f, 2.0f, 3.0f, 0.5f, -1.0f, 0.0f};
  std::vector<int32_t> labels{0, 2};
  std::vector<float> sp(4), lp(2), sd(4), ld(2), dp(10, 9.0f), dd(6);
  be.softmax_xent_forward(padded.data(), 5, labels.data(), 2, 3, sp.data(), lp.data());
  be.softmax_xent_forward(dense.data(), 3, labels.data(), 2, 3, sd.data(), ld.data());
  EXPECT_EQ(lp, ld);
  EXPECT_EQ(sp, sd);
  be.softmax_xent_backward(padded.data(), 5, sp.data(), labels.data(), 2, 3, 0.25f, dp.data());
  be.softmax_xent_backward(dense.data(), 3, sd.data(), labels.data(), 2, 3, 0.25f, dd.data());
  for (int r = 0; r < 2; ++r) {
    for (int j = 0; j < 3; ++j) EXPECT_EQ(dp[r * 5 + j], dd[r * 3 + j]);
    EXPECT_EQ(dp[r * 5 + 3], 0.0f);
    EXPECT_EQ(dp[r * 5 + 4], 0.0f);
  }
  // Argmaxes 2 and 0 among the classes; the padding (50, 60) would win if it took part.
  EXPECT_EQ(be.count_correct(padded.data(), 5, std::vector<int32_t>{2, 0}.data(), 2, 3), 2);
  // In place: dlogits may alias the logits.
  be.softmax_xent_backward(padded.data(), 5, sp.data(), labels.data(), 2, 3, 0.25f, padded.data());
  EXPECT_EQ(padded, dp);
}

TEST(CpuBackendLoss, CountCorrectFirstMaxOnTies) {
  CpuBackend be(2);
  std::vector<float> logits{0.1f, 0.9f, 0.0f,   // argmax 1
                            0.5f, 0.5f, 0.2f,   // tie: first (0)
                            0.0f, 0.0f, 2.0f};  // argmax 2
  EXPECT_EQ(be.count_correct(logits.data(), 3, std::vector<int32_t>{1, 0, 2}.data(), 3, 3), 3);
  EXPECT_EQ(be.count_correct(logits.data(), 3, std::vector<int32_t>{1, 1, 0}.data(), 3, 3), 1);
}

TEST(CpuBackendLoss, SumsAreDeterministicAndAccurate) {
  const int64_t n = 100003;
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> x(n);
  double ref = 0, ref2 = 0;
  for (float& v : x) {
    v = d(gen) * 1000.0f;
    ref += v;
    ref2 += static_cast<double>(v) * v;
  }
  CpuBackend be1(1);
  const double s1 = be1.sum(x.data(), n), q1 = be1.sum_squares(x.data(), n);
  CpuBackend be2(2);
  for (int rep = 0; rep < 5; ++rep) {
    EXPECT_EQ(be2.sum(x.data(), n), s1);  // bitwise, across calls and thread counts
    EXPECT_EQ(be2.sum_squares(x.data(), n), q1);
  }
  EXPECT_NEAR(s1, ref, 1e-6 * std::fabs(ref2));
  EXPECT_NEAR(q1, ref2, 1e-9 * ref2);
  EXPECT_EQ(be1.sum(x.data(), 0), 0.0);
}

// all_finite is what the trainer checks every step: any NaN or inf anywhere, and only
// those (the largest floats and denormals are finite), the same as the base definition.
TEST(CpuBackendLoss, AllFiniteFindsEveryNanAndInf) {
  CpuBackend be(1);
  const int64_t n = 3 * 4096 + 17;
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = (i % 2 ? -1.0f : 1.0f) * std::ldexp(1.0f, static_cast<int>(i % 250) - 125);
  x[5] = std::numeric_limits<float>::max();
  x[6] = -std::numeric_limits<float>::max();
  x[7] = std::numeric_limits<float>::denorm_min();
  EXPECT_TRUE(be.all_finite(x.data(), n));
  EXPECT_TRUE(be.all_finite(x.data(), 0));
  for (float bad : {std::nanf(""), -std::nanf(""), HUGE_VALF, -HUGE_VALF})
    for (int64_t at : {int64_t{0}, int64_t{4095}, int64_t{4096}, n - 1}) {
      std::vector<float> y = x;
      y[at] = bad;
      EXPECT_FALSE(be.all_finite(y.data(), n)) << bad << " at " << at;
      EXPECT_EQ(be.all_finite(y.data(), n), std::isfinite(be.sum_squares(y.data(), n)));
      EXPECT_TRUE(be.all_finite(y.data(), at)) << "elements before " << at;
    }
}

}  // namespace
}  // namespace shardtrain

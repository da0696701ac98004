// Softmax cross-entropy, accuracy counting and deterministic reductions.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/cpu/cpu_backend.h"

namespace shardtrain {
namespace {

TEST(CpuBackendLoss, SoftmaxXentMatchesHandComputation) {
  CpuBackend be(1);
  // Row 1 has huge logits: without max-subtraction exp() overflows to inf.
  std::vector<float> logits{1.0f, 2.0f, 3.0f, 1000.0f, 0.0f, -1000.0f};
  std::vector<int32_t> labels{2, 1};
  std::vector<float> probs(6), losses(2), d(6);
  be.softmax_xent_forward(logits.data(), labels.data(), 2, 3, probs.data(), losses.data());
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(probs[0], std::exp(1.0) / z, 1e-6);
  EXPECT_NEAR(probs[1], std::exp(2.0) / z, 1e-6);
  EXPECT_NEAR(probs[2], std::exp(3.0) / z, 1e-6);
  EXPECT_NEAR(losses[0], std::log(z) - 3.0, 1e-6);
  EXPECT_FLOAT_EQ(probs[3], 1.0f);
  EXPECT_EQ(probs[4], 0.0f);
  EXPECT_NEAR(losses[1], 1000.0, 1e-3);  // finite: -log softmax = 1000 - 0
  be.softmax_xent_backward(probs.data(), labels.data(), 2, 3, 0.5f, d.data());
  EXPECT_NEAR(d[0], 0.5 * std::exp(1.0) / z, 1e-6);
  EXPECT_NEAR(d[2], 0.5 * (std::exp(3.0) / z - 1.0), 1e-6);
  EXPECT_NEAR(d[3], 0.5, 1e-6);
  EXPECT_NEAR(d[4], -0.5, 1e-6);
}

TEST(CpuBackendLoss, CountCorrectFirstMaxOnTies) {
  CpuBackend be(2);
  std::vector<float> logits{0.1f, 0.9f, 0.0f,   // argmax 1
                            0.5f, 0.5f, 0.2f,   // tie: first (0)
                            0.0f, 0.0f, 2.0f};  // argmax 2
  EXPECT_EQ(be.count_correct(logits.data(), std::vector<int32_t>{1, 0, 2}.data(), 3, 3), 3);
  EXPECT_EQ(be.count_correct(logits.data(), std::vector<int32_t>{1, 1, 0}.data(), 3, 3), 1);
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

}  // namespace
}  // namespace shardtrain

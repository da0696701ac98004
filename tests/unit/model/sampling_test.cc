// Sampling the next token: greedy, top-k, padding columns, seeded draws, temperature.
#include "model/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "test_random.h"

namespace shardtrain {
namespace {

int32_t argmax(const std::vector<float>& v, int64_t n) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.begin() + n) - v.begin());
}

// The draws of sequence 0 over `draws` steps.
std::vector<int32_t> draw_many(const std::vector<float>& logits, int64_t vocab, const SamplingOptions& o, int draws,
                               uint64_t seed = 7) {
  std::vector<int32_t> out;
  for (int s = 0; s < draws; ++s) out.push_back(sample_token(logits.data(), vocab, o, sampling_uniform(seed, 0, s)));
  return out;
}

TEST(Sampling, GreedyIsArgmaxAndTiesGoToTheLowestIndex) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    const std::vector<float> logits = testing::random_uniform(100, -5, 5, seed);
    for (float u : {0.0f, 0.5f, 0.999f}) {
      EXPECT_EQ(sample_token(logits.data(), 100, {0.0, 0}, u), argmax(logits, 100));
      EXPECT_EQ(sample_token(logits.data(), 100, {1.0, 1}, u), argmax(logits, 100));  // top-1 is greedy too
    }
  }
  const std::vector<float> tied = {1, 3, 0, 3, 3};
  EXPECT_EQ(sample_token(tied.data(), 5, {0.0, 0}, 0.5f), 1);
}

TEST(Sampling, TopKNeverPicksOutsideTheKLargest) {
  const int64_t vocab = 50, k = 5;
  const std::vector<float> logits = testing::random_uniform(vocab, -1, 1, 3);  // flat: all plausible
  std::vector<int32_t> order(vocab);
  for (int32_t i = 0; i < vocab; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  const std::set<int32_t> top(order.begin(), order.begin() + k);
  std::set<int32_t> seen;
  for (int32_t t : draw_many(logits, vocab, {2.0, k}, 3000)) {
    ASSERT_TRUE(top.count(t)) << "token " << t << " is not among the " << k << " largest logits";
    seen.insert(t);
  }
  EXPECT_EQ(seen, top);  // and every one of them is drawn sometimes
  // Ties at the k-th value: exactly k candidates, the lower indices first.
  const std::vector<float> tied = {1, 1, 1, 1, 0};
  for (int32_t t : draw_many(tied, 5, {1.0, 2}, 500)) EXPECT_LT(t, 2);
}

TEST(Sampling, PaddingColumnsAreNeverSampled) {
  const int64_t vocab = 50, width = 64;  // a vocabulary padded to 64 columns
  std::vector<float> logits = testing::random_uniform(width, -1, 1, 4);
  for (int64_t i = vocab; i < width; ++i) logits[i] = 1e4f;  // would win everything if read
  for (const SamplingOptions& o : {SamplingOptions{0.0, 0}, SamplingOptions{1.0, 0}, SamplingOptions{1.0, 10},
                                   SamplingOptions{5.0, 1000}})
    for (int32_t t : draw_many(logits, vocab, o, 2000)) ASSERT_LT(t, vocab);
}

TEST(Sampling, SameSeedSameChoiceOtherSeedOrSequenceOther) {
  const std::vector<float> logits = testing::random_uniform(256, -1, 1, 5);
  const SamplingOptions o{1.0, 0};
  EXPECT_EQ(draw_many(logits, 256, o, 100, 11), draw_many(logits, 256, o, 100, 11));
  EXPECT_NE(draw_many(logits, 256, o, 100, 11), draw_many(logits, 256, o, 100, 12));
  EXPECT_EQ(sampling_uniform(11, 3, 9), sampling_uniform(11, 3, 9));
  EXPECT_NE(sampling_uniform(11, 0, 9), sampling_uniform(11, 1, 9));  // each sequence its own stream
  EXPECT_NE(sampling_uniform(11, 0, 9), sampling_uniform(11, 0, 10));
  for (int s = 0; s < 1000; ++s) {
    const float u = sampling_uniform(1, 0, s);
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
  }
}

TEST(Sampling, InverseCdfEndsPickTheFirstAndLastCandidates) {
  const std::vector<float> logits = {0, 0, 0, 0};
  EXPECT_EQ(sample_token(logits.data(), 4, {1.0, 0}, 0.0f), 0);
  EXPECT_EQ(sample_token(logits.data(), 4, {1.0, 0}, std::nextafter(1.0f, 0.0f)), 3);
  EXPECT_EQ(sample_token(logits.data(), 4, {1.0, 0}, 0.3f), 1);
  // A tiny temperature is greedy in effect, without overflow.
  const std::vector<float> two = {0, 1e-3f};
  EXPECT_EQ(sample_token(two.data(), 2, {1e-30, 0}, 0.0f), 1);
}

// Empirical frequency of the most likely token against softmax(logits / temperature).
TEST(Sampling, LowerTemperatureSharpensTheDistribution) {
  const std::vector<float> logits = {2, 1, 0, 0, -1};
  const int draws = 20000;
  double previous = 0;
  for (double temp : {2.0, 1.0, 0.5}) {
    double z = 0;
    for (float l : logits) z += std::exp(l / temp);
    const double expected = std::exp(2 / temp) / z;
    const auto got = draw_many(logits, 5, {temp, 0}, draws);
    const double freq = std::count(got.begin(), got.end(), 0) / static_cast<double>(draws);
    EXPECT_NEAR(freq, expected, 0.02) << "temperature " << temp;
    EXPECT_GT(freq, previous) << "temperature " << temp;
    previous = freq;
  }
}

TEST(Sampling, OptionsCheck) {
  EXPECT_TRUE(sampling_options_check({0.0, 0}).ok());
  EXPECT_TRUE(sampling_options_check({0.8, 40}).ok());
  EXPECT_FALSE(sampling_options_check({-0.1, 40}).ok());
  EXPECT_FALSE(sampling_options_check({NAN, 40}).ok());
  EXPECT_FALSE(sampling_options_check({INFINITY, 40}).ok());
  EXPECT_FALSE(sampling_options_check({1.0, -1}).ok());
}

}  // namespace
}  // namespace shardtrain

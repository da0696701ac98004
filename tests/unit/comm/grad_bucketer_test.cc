// Bucket layout: backward order, the byte cap, oversized tensors, views vs staged buckets.
#include <gtest/gtest.h>

#include "comm/grad_bucketer.h"

namespace shardtrain {
namespace {

constexpr int64_t kF = sizeof(float);

// Tensors back to back, as the Model lays them out.
std::vector<GradTensor> adjacent(const std::vector<int64_t>& sizes) {
  std::vector<GradTensor> t;
  int64_t off = 0;
  for (int64_t n : sizes) {
    t.push_back({off, n});
    off += n;
  }
  return t;
}

TEST(GradBucketLayout, ZeroCapIsOneBucketInPlace) {
  auto b = grad_bucket_layout(adjacent({10, 20, 30}), 0);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].first, 0);
  EXPECT_EQ(b[0].last, 2);
  EXPECT_EQ(b[0].numel, 60);
  EXPECT_TRUE(b[0].contiguous);
  EXPECT_EQ(b[0].offset, 0);
  EXPECT_EQ(grad_bucket_staging_numel(b), 0);
}

TEST(GradBucketLayout, FillsInBackwardOrderUpToTheCap) {
  // Backward order is 40, 30, 20, 10. A 60-float cap: [40] then [30 + 20 + 10].
  auto b = grad_bucket_layout(adjacent({10, 20, 30, 40}), 60 * kF);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].first, 3);
  EXPECT_EQ(b[0].last, 3);
  EXPECT_EQ(b[0].offset, 60);
  EXPECT_EQ(b[0].numel, 40);
  EXPECT_EQ(b[1].first, 0);
  EXPECT_EQ(b[1].last, 2);
  EXPECT_EQ(b[1].offset, 0);
  EXPECT_EQ(b[1].numel, 60);
}

TEST(GradBucketLayout, OversizedTensorGetsItsOwnBucket) {
  auto b = grad_bucket_layout(adjacent({5, 1000, 5}), 100 * kF);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].first, 2);
  EXPECT_EQ(b[1].first, 1);
  EXPECT_EQ(b[1].numel, 1000);
  EXPECT_EQ(b[2].first, 0);
}

TEST(GradBucketLayout, EveryTensorInExactlyOneBucket) {
  const std::vector<int64_t> sizes = {7, 0, 300, 12, 12, 0, 5000, 1, 64};
  for (int64_t cap : {int64_t{0}, 16 * kF, 100 * kF, 400 * kF, int64_t{1} << 20}) {
    auto b = grad_bucket_layout(adjacent(sizes), cap);
    std::vector<int> owner(sizes.size(), -1);
    int64_t total = 0;
    int prev_first = static_cast<int>(sizes.size());
    for (size_t k = 0; k < b.size(); ++k) {
      EXPECT_EQ(b[k].last, prev_first - 1) << "buckets must tile the tensors in backward order, cap " << cap;
      prev_first = b[k].first;
      for (int t = b[k].first; t <= b[k].last; ++t) owner[t] = static_cast<int>(k);
      total += b[k].numel;
    }
    EXPECT_EQ(prev_first, 0);
    for (size_t t = 0; t < sizes.size(); ++t) EXPECT_GE(owner[t], 0) << t;
    EXPECT_EQ(total, 5396);
  }
}

TEST(GradBucketLayout, GapsMakeStagedBuckets) {
  // Tensor 1 is not adjacent to tensor 0 (a gap of 3 floats): the bucket holding both is
  // packed into staging; the one holding tensor 2 alone stays a view.
  std::vector<GradTensor> t = {{0, 10}, {13, 10}, {23, 50}};
  auto b = grad_bucket_layout(t, 50 * kF);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_TRUE(b[0].contiguous);
  EXPECT_EQ(b[0].offset, 23);
  EXPECT_FALSE(b[1].contiguous);
  EXPECT_EQ(b[1].offset, 0);  // start of the staging buffer
  EXPECT_EQ(b[1].numel, 20);
  EXPECT_EQ(grad_bucket_staging_numel(b), 20);
}

TEST(GradBucketLayout, NoTensorsNoBuckets) { EXPECT_TRUE(grad_bucket_layout({}, 1024).empty()); }

}  // namespace
}  // namespace shardtrain

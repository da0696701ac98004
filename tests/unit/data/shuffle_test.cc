#include "data/shuffle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

namespace shardtrain {
namespace {

TEST(DataShuffle, IsAPermutation) {
  for (int64_t n : {0, 1, 2, 7, 1000}) {
    std::vector<int64_t> p = shuffle_permutation(n, 123, 4);
    ASSERT_EQ(static_cast<int64_t>(p.size()), n);
    std::sort(p.begin(), p.end());
    std::vector<int64_t> id(static_cast<size_t>(n));
    std::iota(id.begin(), id.end(), int64_t{0});
    EXPECT_EQ(p, id) << "n=" << n;
  }
}

TEST(DataShuffle, SameSeedAndEpochSamePermutation) {
  EXPECT_EQ(shuffle_permutation(1000, 42, 3), shuffle_permutation(1000, 42, 3));
  EXPECT_NE(shuffle_permutation(1000, 42, 3), shuffle_permutation(1000, 42, 4));
  EXPECT_NE(shuffle_permutation(1000, 42, 3), shuffle_permutation(1000, 43, 3));
  // Seed and epoch are mixed separately: shifting one into the other gives a new order.
  EXPECT_NE(shuffle_permutation(1000, 43, 2), shuffle_permutation(1000, 42, 3));
}

// Pinned output: the generator is fully specified, so this holds on every platform and
// compiler (the values were also reproduced by an independent Python
// implementation). A change here silently changes every run's batches: do not update lightly.
TEST(DataShuffle, PinnedOutput) {
  SplitMix64 rng(0);
  EXPECT_EQ(rng.next(), 0xe220a8397b1dcdafULL);  // published SplitMix64 reference value
  EXPECT_EQ(shuffle_permutation(10, 42, 0),
            (std::vector<int64_t>{5, 8, 0, 4, 3, 6, 2, 9, 1, 7}));
}

TEST(DataShuffle, BoundedDrawsAreRoughlyUniform) {
  SplitMix64 rng(7);
  std::vector<int> hist(6, 0);
  for (int i = 0; i < 60000; ++i) ++hist[rng.below(6)];
  for (int h : hist) EXPECT_NEAR(h, 10000, 400);
  for (int i = 0; i < 1000; ++i) EXPECT_LT(rng.below(3), 3u);
  EXPECT_EQ(rng.below(1), 0u);
}

}  // namespace
}  // namespace shardtrain

// Counter-based dropout: masks depend only on (seed, stream, global index).
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"

namespace shardtrain {
namespace {

std::vector<float> apply(CpuBackend& be, int64_t n, float p, DropoutKey key) {
  std::vector<float> x(n, 1.0f), y(n);
  be.dropout(x.data(), y.data(), n, p, key);
  return y;
}

TEST(CpuBackendDropout, MaskIndependentOfHowTheRangeIsSplit) {
  CpuBackend be(2);
  const DropoutKey key{7, 3, 100};
  auto whole = apply(be, 1000, 0.4f, key);
  std::vector<float> pieces;
  // Three calls covering [0, 1), [1, 377), [377, 1000) of the same global range.
  const int64_t cuts[] = {0, 1, 377, 1000};
  for (int i = 0; i < 3; ++i) {
    auto part = apply(be, cuts[i + 1] - cuts[i], 0.4f, DropoutKey{7, 3, 100 + static_cast<uint64_t>(cuts[i])});
    pieces.insert(pieces.end(), part.begin(), part.end());
  }
  EXPECT_EQ(pieces, whole);
  CpuBackend be1(1);
  EXPECT_EQ(apply(be1, 1000, 0.4f, key), whole);  // thread count does not matter
}

TEST(CpuBackendDropout, KeepFractionAndScale) {
  CpuBackend be(2);
  for (float p : {0.1f, 0.5f, 0.9f}) {
    const int64_t n = 200000;
    auto y = apply(be, n, p, DropoutKey{1, 2, 0});
    int64_t kept = 0;
    for (float v : y) {
      if (v != 0.0f) {
        ++kept;
        ASSERT_FLOAT_EQ(v, 1.0f / (1.0f - p));
      }
    }
    EXPECT_NEAR(static_cast<double>(kept) / n, 1.0 - p, 0.01) << "p=" << p;
  }
}

TEST(CpuBackendDropout, SameKeySameMaskDifferentKeyDifferentMask) {
  CpuBackend be(1);
  auto a = apply(be, 512, 0.5f, DropoutKey{1, 2, 3});
  EXPECT_EQ(apply(be, 512, 0.5f, DropoutKey{1, 2, 3}), a);
  EXPECT_NE(apply(be, 512, 0.5f, DropoutKey{2, 2, 3}), a);  // seed
  EXPECT_NE(apply(be, 512, 0.5f, DropoutKey{1, 3, 3}), a);  // stream
}

TEST(CpuBackendDropout, EdgeProbabilities) {
  CpuBackend be(1);
  EXPECT_EQ(apply(be, 64, 0.0f, DropoutKey{1, 1, 0}), std::vector<float>(64, 1.0f));
  EXPECT_EQ(apply(be, 64, 1.0f, DropoutKey{1, 1, 0}), std::vector<float>(64, 0.0f));
}

}  // namespace
}  // namespace shardtrain

// core/bfloat16.h: the host conversions that the GPU kernels must match bit for bit
// (tests/cuda/mixed_precision_test.cc checks the device side against these).
#include "core/bfloat16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

namespace shardtrain {
namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

TEST(BFloat16, ExactValuesSurviveTheRoundTrip) {
  for (float f : {0.0f, -0.0f, 1.0f, -2.5f, 0.15625f, 65536.0f, 1.5f})
    EXPECT_EQ(bf16_to_float(bf16_from_float(f)), f) << f;
  EXPECT_EQ(bf16_from_float(1.0f).bits, 0x3f80);
  EXPECT_EQ(bf16_from_float(-2.0f).bits, 0xc000);
}

TEST(BFloat16, RoundsToNearestTiesToEven) {
  // 1 + 2^-8 lies exactly between 1 (even mantissa) and 1 + 2^-7: rounds down to 1.
  EXPECT_EQ(bf16_from_float(from_bits(0x3f808000u)).bits, 0x3f80);
  // 1 + 3 * 2^-8 lies between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
  EXPECT_EQ(bf16_from_float(from_bits(0x3f818000u)).bits, 0x3f82);
  // Just above the tie rounds up; just below rounds down.
  EXPECT_EQ(bf16_from_float(from_bits(0x3f808001u)).bits, 0x3f81);
  EXPECT_EQ(bf16_from_float(from_bits(0x3f807fffu)).bits, 0x3f80);
  // 8 significant bits: the relative error is at most half an ulp, 2^-8.
  for (float f = 1e-3f; f < 1e6f; f *= 1.37f)
    EXPECT_LE(std::fabs(bf16_to_float(bf16_from_float(f)) - f), std::ldexp(f, -8)) << f;
}

TEST(BFloat16, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(bf16_to_float(bf16_from_float(inf)), inf);
  EXPECT_EQ(bf16_to_float(bf16_from_float(-inf)), -inf);
  EXPECT_TRUE(std::isnan(bf16_to_float(bf16_from_float(std::nanf("")))));
  // A NaN whose payload lives only in the low 16 bits must not become infinity.
  EXPECT_TRUE(std::isnan(bf16_to_float(bf16_from_float(from_bits(0x7f800001u)))));
  // The largest finite float rounds up to infinity, as __float2bfloat16_rn does.
  EXPECT_EQ(bf16_to_float(bf16_from_float(std::numeric_limits<float>::max())), inf);
}

}  // namespace
}  // namespace shardtrain

// The bf16 launchers of the elementwise and gradient-bucket kernels against their fp32
// twins on the same (bf16-representable) inputs: each bf16 output must be the fp32
// output rounded once to nearest-even, each fp32 output the same bits (see
// kernel_bf16_util.h). Skips without a GPU, except the zero-size test, which needs none.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernel_bf16_util.h"
#include "kernels/attention.h"
#include "kernels/bucket.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/loss.h"
#include "kernels/norm.h"

namespace shardtrain {
namespace {

using testing::bf16_exact_uniform;
using testing::Bf16KernelTest;
using testing::DeviceBuffer;
using testing::expect_rounded;
using testing::expect_same_bits;
using testing::to_bf16;
using testing::widen;

// Runs everywhere, GPU or not: a launcher with nothing to do returns cudaSuccess before it
// makes any CUDA call (without a GPU, any call would fail).
TEST(Bf16KernelZeroSizeTest, LaunchersWithNothingToDoReturnSuccess) {
  const bf16* cx = nullptr;
  bf16* x = nullptr;
  const float* cf = nullptr;
  float* f = nullptr;
  const int32_t* ids = nullptr;
  cudaStream_t s = nullptr;
  EXPECT_EQ(kernels::add(cx, cx, x, 0, s), cudaSuccess);
  EXPECT_EQ(kernels::activation_forward(Activation::kGeluTanh, cx, x, 0, s), cudaSuccess);
  EXPECT_EQ(kernels::activation_backward(Activation::kGelu, cx, cx, x, 0, s), cudaSuccess);
  EXPECT_EQ(kernels::dropout(cx, x, 0, 0.5f, DropoutKey{1, 2, 3}, s), cudaSuccess);
  EXPECT_EQ(kernels::bias_add(x, cx, 0, 4, 4, s), cudaSuccess);
  EXPECT_EQ(kernels::bias_grad(cx, f, 4, 4, 0, s), cudaSuccess);
  EXPECT_EQ(kernels::convert(cf, x, 0, s), cudaSuccess);
  EXPECT_EQ(kernels::convert(cx, f, 0, s), cudaSuccess);
  EXPECT_EQ(kernels::layernorm_forward(cx, cx, cx, 1e-5f, 0, 8, x, f, f, s), cudaSuccess);
  EXPECT_EQ(kernels::layernorm_backward(cx, cx, cx, cf, cf, 0, 8, nullptr, x, f, f, s), cudaSuccess);
  EXPECT_EQ(kernels::embedding_forward(ids, 0, cx, 10, 8, x, s), cudaSuccess);
  EXPECT_EQ(kernels::embedding_backward(ids, 0, cx, 10, 8, nullptr, 0, f, s), cudaSuccess);
  EXPECT_EQ(kernels::softmax_xent_forward(cx, 16, ids, 0, 10, f, f, s), cudaSuccess);
  EXPECT_EQ(kernels::softmax_xent_backward(cx, 16, cf, ids, 0, 10, 1.0f, x, s), cudaSuccess);
  EXPECT_EQ(kernels::grad_bucket_pack(nullptr, 0, 1.0f, x, s), cudaSuccess);
  EXPECT_EQ(kernels::grad_bucket_unpack(cx, 1.0f, nullptr, 0, s), cudaSuccess);
  const AttentionGeometry empty{0, 16, 2, 32};
  EXPECT_EQ(kernels::attention_forward(cx, empty, x, f, s), cudaSuccess);
  EXPECT_EQ(kernels::attention_backward(cx, cx, cx, cf, empty, nullptr, x, s), cudaSuccess);
  EXPECT_EQ(kernels::attention_decode(cx, 0, 16, empty, x, x, s), cudaSuccess);
}

TEST_F(Bf16KernelTest, ConvertRoundsToNearestEvenAndWidensExactly) {
  // Ties (1 + 2^-8 goes down to even, 1 + 3 * 2^-8 up to even), just above a tie,
  // subnormals, signed zero, overflow to infinity, infinities, NaN, then random values
  // over many binades.
  std::vector<float> src = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f, -(1.0f + 0x1p-8f),
                            1e-40f, -1.4e-45f, 0x1.02p-127f, 0.0f, -0.0f, FLT_MAX, -FLT_MAX,
                            std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN()};
  const auto mant = testing::random_uniform(20000, -2.0f, 2.0f, 11);
  for (size_t i = 0; i < mant.size(); ++i) src.push_back(std::ldexp(mant[i], static_cast<int>(i % 200) - 100));
  const int64_t n = static_cast<int64_t>(src.size());
  DeviceBuffer<float> d_src(src);
  DeviceBuffer<bf16> d_dst(src.size());
  ASSERT_EQ(kernels::convert(d_src.get(), d_dst.get(), n, stream_), cudaSuccess);
  expect_rounded(d_dst.download(), src, "convert fp32 -> bf16");

  // Every one of the 65536 bf16 bit patterns widens exactly.
  std::vector<bf16> all(65536);
  for (uint32_t b = 0; b < 65536; ++b) all[b].bits = static_cast<uint16_t>(b);
  DeviceBuffer<bf16> d_all(all);
  DeviceBuffer<float> d_wide(all.size());
  ASSERT_EQ(kernels::convert(d_all.get(), d_wide.get(), 65536, stream_), cudaSuccess);
  expect_same_bits(d_wide.download(), widen(all), "convert bf16 -> fp32");
}

TEST_F(Bf16KernelTest, AddActivationsDropoutAndBiasAddAreTheFp32OpsRoundedOnce) {
  const int64_t n = 100003;  // not a multiple of a block
  const auto a = bf16_exact_uniform(n, 1, -4.0f, 4.0f), b = bf16_exact_uniform(n, 2, -4.0f, 4.0f);
  DeviceBuffer<float> fa(a), fb(b), fy(n);
  DeviceBuffer<bf16> ha(to_bf16(a)), hb(to_bf16(b)), hy(n);

  ASSERT_EQ(kernels::add(fa.get(), fb.get(), fy.get(), n, stream_), cudaSuccess);
  ASSERT_EQ(kernels::add(ha.get(), hb.get(), hy.get(), n, stream_), cudaSuccess);
  const auto sum = fy.download();
  expect_rounded(hy.download(), sum, "add");
  ASSERT_EQ(kernels::add(ha.get(), hb.get(), ha.get(), n, stream_), cudaSuccess);  // y aliases a
  expect_rounded(ha.download(), sum, "add in place");
  ha.upload(to_bf16(a));

  for (const auto& [act, name] : {std::pair{Activation::kRelu, "relu"}, std::pair{Activation::kGelu, "gelu"},
                                  std::pair{Activation::kGeluTanh, "gelu_tanh"}}) {
    ASSERT_EQ(kernels::activation_forward(act, fa.get(), fy.get(), n, stream_), cudaSuccess);
    ASSERT_EQ(kernels::activation_forward(act, ha.get(), hy.get(), n, stream_), cudaSuccess);
    expect_rounded(hy.download(), fy.download(), std::string(name) + " forward");
    ASSERT_EQ(kernels::activation_backward(act, fa.get(), fb.get(), fy.get(), n, stream_), cudaSuccess);
    ASSERT_EQ(kernels::activation_backward(act, ha.get(), hb.get(), hy.get(), n, stream_), cudaSuccess);
    expect_rounded(hy.download(), fy.download(), std::string(name) + " backward");
  }

  // The mask is the counter-based one, so the two launchers drop the same elements; p = 0
  // is a copy and p = 1 all zeros.
  for (float p : {0.25f, 0.0f, 1.0f}) {
    const DropoutKey key{1234, 56, 789};
    ASSERT_EQ(kernels::dropout(fa.get(), fy.get(), n, p, key, stream_), cudaSuccess);
    ASSERT_EQ(kernels::dropout(ha.get(), hy.get(), n, p, key, stream_), cudaSuccess);
    expect_rounded(hy.download(), fy.download(), "dropout p=" + std::to_string(p));
  }

  const int64_t outer = 3, channels = 37, inner = 129;
  const int64_t m = outer * channels * inner;
  const auto y0 = bf16_exact_uniform(m, 3), bias = bf16_exact_uniform(channels, 4, -2.0f, 2.0f);
  DeviceBuffer<float> fy2(y0), fbias(bias);
  DeviceBuffer<bf16> hy2(to_bf16(y0)), hbias(to_bf16(bias));
  ASSERT_EQ(kernels::bias_add(fy2.get(), fbias.get(), outer, channels, inner, stream_), cudaSuccess);
  ASSERT_EQ(kernels::bias_add(hy2.get(), hbias.get(), outer, channels, inner, stream_), cudaSuccess);
  expect_rounded(hy2.download(), fy2.download(), "bias_add");
}

TEST_F(Bf16KernelTest, BiasGradAccumulatesBf16GradientsIntoTheFp32MasterBitwise) {
  const int64_t outer = 5, channels = 37, inner = 300;
  const auto dy = bf16_exact_uniform(outer * channels * inner, 5);
  const auto db0 = testing::random_uniform(channels, -1.0f, 1.0f, 6);  // accumulated into
  DeviceBuffer<float> fdy(dy), fdb(db0), hdb(db0);
  DeviceBuffer<bf16> hdy(to_bf16(dy));
  ASSERT_EQ(kernels::bias_grad(fdy.get(), fdb.get(), outer, channels, inner, stream_), cudaSuccess);
  ASSERT_EQ(kernels::bias_grad(hdy.get(), hdb.get(), outer, channels, inner, stream_), cudaSuccess);
  expect_same_bits(hdb.download(), fdb.download(), "bias_grad");
}

TEST_F(Bf16KernelTest, GradBucketPackRoundsOnceAndUnpackWidensThenScales) {
  // 67 segments (more than one launch's 64), sizes from empty to several 4096-element
  // chunks, all carved from one allocation.
  std::vector<int64_t> sizes;
  int64_t total = 0;
  for (int s = 0; s < 67; ++s) {
    sizes.push_back(s % 11 == 0 ? 0 : (s * 1237) % 9000 + 1);
    total += sizes.back();
  }
  const auto grads = testing::random_uniform(total, -3.0f, 3.0f, 7);  // fp32 gradients, not bf16-exact
  DeviceBuffer<float> d_grads(grads), d_out(static_cast<size_t>(total)), d_ref(static_cast<size_t>(total));
  auto segments_of = [&](float* base) {
    std::vector<GradSegment> segs;
    int64_t off = 0;
    for (int64_t size : sizes) {
      segs.push_back(GradSegment{base + off, size});
      off += size;
    }
    return segs;
  };
  const float scale = 0.37f;
  DeviceBuffer<float> fflat(static_cast<size_t>(total));
  DeviceBuffer<bf16> hflat(static_cast<size_t>(total));
  const auto in = segments_of(d_grads.get());
  ASSERT_EQ(kernels::grad_bucket_pack(in.data(), 67, scale, fflat.get(), stream_), cudaSuccess);
  ASSERT_EQ(kernels::grad_bucket_pack(in.data(), 67, scale, hflat.get(), stream_), cudaSuccess);
  const auto packed = hflat.download();
  expect_rounded(packed, fflat.download(), "grad_bucket_pack");

  // Unpack the bf16 bucket, and the same values widened through the fp32 launcher.
  fflat.upload(widen(packed));
  const auto out = segments_of(d_out.get()), ref = segments_of(d_ref.get());
  ASSERT_EQ(kernels::grad_bucket_unpack(hflat.get(), 1.0f / scale, out.data(), 67, stream_), cudaSuccess);
  ASSERT_EQ(kernels::grad_bucket_unpack(fflat.get(), 1.0f / scale, ref.data(), 67, stream_), cudaSuccess);
  expect_same_bits(d_out.download(), d_ref.download(), "grad_bucket_unpack");
}

}  // namespace
}  // namespace shardtrain

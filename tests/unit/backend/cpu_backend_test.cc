// CpuBackend memory, GEMM, bias and activation primitives against naive loops.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "test_random.h"

namespace shardtrain {
namespace {

// Uniform in [-1, 1), seeded.
std::vector<float> rnd(int64_t n, uint32_t seed) { return testing::random_uniform(n, -1.0f, 1.0f, seed); }

TEST(CpuBackend, AllocIsAlignedAndZeroed) {
  CpuBackend be(1);
  for (int64_t n : {0, 1, 3, 17, 1000}) {
    Tensor t = be.alloc({n}, DType::kFloat32);
    ASSERT_TRUE(t.defined());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.f32()) % 64, 0u);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(t.f32()[i], 0.0f);
  }
  Tensor i = be.alloc({2, 3}, DType::kInt32);
  EXPECT_EQ(i.dtype(), DType::kInt32);
  be.fill(i, 7.0f);
  for (int k = 0; k < 6; ++k) EXPECT_EQ(i.data<int32_t>()[k], 7);
  const std::string name = be.name();  // "cpu (OpenBLAS <its kernel family>, 1 thread)"
  EXPECT_EQ(name.rfind("cpu (OpenBLAS ", 0), 0u) << name;
  EXPECT_NE(name.find(", 1 thread)"), std::string::npos) << name;
}

TEST(CpuBackend, CopyFillScale) {
  CpuBackend be(2);
  Tensor a = be.alloc({5}, DType::kFloat32), b = be.alloc({5}, DType::kFloat32);
  const float src[5] = {1, 2, 3, 4, 5};
  be.copy_from_host(a, src);
  be.copy(a, b);
  be.scale(b.f32(), 5, -2.0f);
  float out[5];
  be.copy_to_host(b, out);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(out[i], -2.0f * src[i]);
  be.fill(a, 0.5f);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.f32()[i], 0.5f);
}

TEST(CpuBackend, GemmAllTransposeCombinations) {
  CpuBackend be(2);
  const int64_t m = 5, n = 7, k = 3;
  const float alpha = 0.5f, beta = 0.25f;
  auto a = rnd(m * k, 1), b = rnd(k * n, 2), c0 = rnd(m * n, 3);
  for (GemmOp oa : {GemmOp::kNoTrans, GemmOp::kTrans}) {
    for (GemmOp ob : {GemmOp::kNoTrans, GemmOp::kTrans}) {
      // A is stored [m, k] or [k, m]; B is stored [k, n] or [n, k].
      auto A = [&](int64_t i, int64_t p) { return oa == GemmOp::kNoTrans ? a[i * k + p] : a[p * m + i]; };
      auto B = [&](int64_t p, int64_t j) { return ob == GemmOp::kNoTrans ? b[p * n + j] : b[j * k + p]; };
      auto c = c0;
      be.gemm(oa, ob, m, n, k, alpha, a.data(), b.data(), beta, c.data());
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double ref = beta * c0[i * n + j];
          for (int64_t p = 0; p < k; ++p) ref += alpha * static_cast<double>(A(i, p)) * B(p, j);
          EXPECT_NEAR(c[i * n + j], ref, 1e-5) << int(oa) << int(ob) << " " << i << "," << j;
        }
    }
  }
}

TEST(CpuBackend, GemmBetaZeroIgnoresGarbage) {
  CpuBackend be(1);
  std::vector<float> a{1, 2}, b{3, 4}, c{NAN, NAN, NAN, NAN};
  be.gemm(GemmOp::kNoTrans, GemmOp::kNoTrans, 2, 2, 1, 1.0f, a.data(), b.data(), 0.0f, c.data());
  EXPECT_EQ(c, (std::vector<float>{3, 4, 6, 8}));
}

TEST(CpuBackend, BiasAddAndGrad) {
  CpuBackend be(2);
  const int64_t outer = 3, ch = 4, inner = 5;
  auto y0 = rnd(outer * ch * inner, 4), b = rnd(ch, 5);
  auto y = y0;
  be.bias_add(y.data(), b.data(), outer, ch, inner);
  std::vector<double> ref(ch, 0.0);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < ch; ++c)
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t idx = (o * ch + c) * inner + i;
        EXPECT_FLOAT_EQ(y[idx], y0[idx] + b[c]);
        ref[c] += y0[idx];
      }
  std::vector<float> db(ch, 99.0f);  // bias_grad accumulates onto what is there
  be.bias_grad(y0.data(), db.data(), outer, ch, inner);
  for (int64_t c = 0; c < ch; ++c) EXPECT_NEAR(db[c], 99.0 + ref[c], 1e-4);
}

TEST(CpuBackend, SwapOuterAxesMatchesNaive) {
  CpuBackend be(2);
  for (auto [a, b, inner] : {std::array<int64_t, 3>{3, 5, 7}, {1, 4, 2}, {4, 1, 3}, {2, 3, 1}}) {
    auto x = rnd(a * b * inner, 9);
    std::vector<float> y(a * b * inner, 42.0f), back(a * b * inner, 42.0f);
    be.swap_outer_axes(x.data(), y.data(), a, b, inner);
    for (int64_t i = 0; i < a; ++i)
      for (int64_t j = 0; j < b; ++j)
        for (int64_t t = 0; t < inner; ++t) ASSERT_EQ(y[(j * a + i) * inner + t], x[(i * b + j) * inner + t]);
    be.swap_outer_axes(y.data(), back.data(), b, a, inner);  // swapping twice is the identity
    EXPECT_EQ(back, x);
  }
}

TEST(CpuBackend, ActivationValues) {
  CpuBackend be(1);
  std::vector<float> x{-2.0f, -1.0f, 0.0f, 1.0f, 2.0f}, y(5), dx(5), dy(5, 1.0f);
  be.activation_forward(Activation::kRelu, x.data(), y.data(), 5);
  EXPECT_EQ(y, (std::vector<float>{0, 0, 0, 1, 2}));
  be.activation_backward(Activation::kRelu, x.data(), dy.data(), dx.data(), 5);
  EXPECT_EQ(dx, (std::vector<float>{0, 0, 0, 1, 1}));
  // torch.nn.GELU()(x) and its derivative, exact erf form.
  be.activation_forward(Activation::kGelu, x.data(), y.data(), 5);
  const double gelu[5] = {-0.04550026389635842, -0.15865525393145707, 0.0, 0.8413447460685429, 1.9544997361036416};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(y[i], gelu[i], 1e-6);
  be.activation_backward(Activation::kGelu, x.data(), dy.data(), dx.data(), 5);
  const double dgelu[5] = {-0.08523180107819767, -0.0833154705876864, 0.5, 1.0833154705876864, 1.0852318010781977};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(dx[i], dgelu[i], 1e-6);
}

}  // namespace
}  // namespace shardtrain

// CpuBackend's other transformer primitives (LayerNorm, embeddings, add, GELU-tanh)
// against naive loops, and bitwise independence from the thread count where the
// implementation promises a fixed reduction order.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "host_tensors.h"
#include "test_random.h"

namespace shardtrain {
namespace {

using testing::random_uniform;
using testing::to_host;
using testing::from_host;
using testing::ids_from_host;

// ------------------------------------------------------------------------ LayerNorm

struct LayerNormRun {
  std::vector<float> y, mean, rstd, dx, dw, db;
};

// Forward and backward over x [rows, c]; dweight/dbias start from dw0/db0.
LayerNormRun run_layernorm(Backend& be, int64_t rows, int64_t c, const std::vector<float>& x,
                           const std::vector<float>& w, const std::vector<float>& b, const std::vector<float>& dy,
                           const std::vector<float>& dw0, const std::vector<float>& db0, float eps) {
  Tensor tx = from_host(be, {rows, c}, x), tw = from_host(be, {c}, w), tb = from_host(be, {c}, b);
  Tensor y = be.alloc({rows, c}, DType::kFloat32), mean = be.alloc({rows}, DType::kFloat32),
         rstd = be.alloc({rows}, DType::kFloat32), dx = be.alloc({rows, c}, DType::kFloat32);
  be.fill(dx, 7.0f);  // overwritten
  Tensor tdy = from_host(be, {rows, c}, dy), dw = from_host(be, {c}, dw0), db = from_host(be, {c}, db0);
  be.layernorm_forward(tx, tw, tb, eps, y, mean, rstd);
  be.layernorm_backward(tdy, tx, tw, mean, rstd, dx, dw, db);
  return {to_host(be, y), to_host(be, mean), to_host(be, rstd), to_host(be, dx), to_host(be, dw), to_host(be, db)};
}

TEST(CpuLayerNorm, ForwardAndBackwardMatchNaiveAndAccumulateParamGrads) {
  CpuBackend be(1);
  const float eps = 1e-5f;
  for (auto [rows, c] : {std::pair<int64_t, int64_t>{1, 1}, {5, 8}, {3, 37}, {16, 4}}) {
    SCOPED_TRACE("rows=" + std::to_string(rows) + " c=" + std::to_string(c));
    auto x = random_uniform(rows * c, -2.0f, 3.0f, 1), w = random_uniform(c, 0.5f, 1.5f, 2),
         b = random_uniform(c, -0.5f, 0.5f, 3), dy = random_uniform(rows * c, -1.0f, 1.0f, 4),
         dw0 = random_uniform(c, -1.0f, 1.0f, 5), db0 = random_uniform(c, -1.0f, 1.0f, 6);
    LayerNormRun r = run_layernorm(be, rows, c, x, w, b, dy, dw0, db0, eps);
    std::vector<double> dw(dw0.begin(), dw0.end()), db(db0.begin(), db0.end());
    for (int64_t i = 0; i < rows; ++i) {
      const float* xr = x.data() + i * c;
      double m = 0, v = 0;
      for (int64_t j = 0; j < c; ++j) m += xr[j];
      m /= c;
      for (int64_t j = 0; j < c; ++j) v += (xr[j] - m) * (xr[j] - m);
      v /= c;  // biased, as torch.nn.LayerNorm
      const double rs = 1.0 / std::sqrt(v + eps);
      EXPECT_NEAR(r.mean[i], m, 1e-6 * (1 + std::fabs(m)));
      EXPECT_NEAR(r.rstd[i], rs, 1e-5 * rs);
      // dx = rs (g - mean(g) - xhat mean(g xhat)), g = dy w.
      double mg = 0, mgx = 0;
      for (int64_t j = 0; j < c; ++j) {
        const double xhat = (xr[j] - m) * rs, g = static_cast<double>(dy[i * c + j]) * w[j];
        EXPECT_NEAR(r.y[i * c + j], xhat * w[j] + b[j], 1e-5) << j;
        mg += g / c;
        mgx += g * xhat / c;
        dw[j] += dy[i * c + j] * xhat;
        db[j] += dy[i * c + j];
      }
      for (int64_t j = 0; j < c; ++j) {
        const double xhat = (xr[j] - m) * rs, g = static_cast<double>(dy[i * c + j]) * w[j];
        EXPECT_NEAR(r.dx[i * c + j], rs * (g - mg - xhat * mgx), 1e-4 * (1 + rs)) << i << "," << j;
      }
    }
    for (int64_t j = 0; j < c; ++j) {
      EXPECT_NEAR(r.dw[j], dw[j], 1e-5 * (1 + std::fabs(dw[j]))) << j;
      EXPECT_NEAR(r.db[j], db[j], 1e-5 * (1 + std::fabs(db[j]))) << j;
    }
  }
}

TEST(CpuLayerNorm, ConstantRowNormalizesToBias) {
  // Zero variance: rstd = 1/sqrt(eps), xhat = 0, so y = bias (no NaN from 0/0).
  CpuBackend be(1);
  std::vector<float> x(6, 3.25f), w{2, 3, 4}, b{0.5f, -1, 2}, z(3, 0.0f);
  LayerNormRun r = run_layernorm(be, 2, 3, x, w, b, std::vector<float>(6, 1.0f), z, z, 1e-5f);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(r.y[i], b[i % 3]) << i;
  EXPECT_NEAR(r.rstd[0], 1.0 / std::sqrt(1e-5), 1e-2);
}

TEST(CpuLayerNorm, BitwiseIndependentOfThreadCount) {
  const int64_t rows = 33, c = 70;
  auto x = random_uniform(rows * c, -2, 2, 11), w = random_uniform(c, 0.5f, 1.5f, 12),
       b = random_uniform(c, -1, 1, 13), dy = random_uniform(rows * c, -1, 1, 14), z = std::vector<float>(c, 0.5f);
  LayerNormRun one, two;
  {
    CpuBackend be(1);
    one = run_layernorm(be, rows, c, x, w, b, dy, z, z, 1e-5f);
  }
  {
    CpuBackend be(2);
    two = run_layernorm(be, rows, c, x, w, b, dy, z, z, 1e-5f);
  }
  EXPECT_EQ(one.y, two.y);
  EXPECT_EQ(one.mean, two.mean);
  EXPECT_EQ(one.rstd, two.rstd);
  EXPECT_EQ(one.dx, two.dx);
  EXPECT_EQ(one.dw, two.dw);
  EXPECT_EQ(one.db, two.db);
}

// ----------------------------------------------------------------------- embeddings

TEST(CpuEmbedding, ForwardGathersRowsExactly) {
  CpuBackend be(1);
  const int64_t V = 7, D = 5;
  auto table = random_uniform(V * D, -1, 1, 21);
  const std::vector<int32_t> ids{3, 0, 6, 3, 3, 1};
  Tensor t = from_host(be, {V, D}, table), y = be.alloc({6, D}, DType::kFloat32);
  be.embedding_forward(ids_from_host(be, ids), t, y);
  auto yh = to_host(be, y);
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t d = 0; d < D; ++d) ASSERT_EQ(yh[i * D + d], table[ids[i] * D + d]) << i << "," << d;
}

// dtable [V, D] starting at dtable0, after embedding_backward of dy for ids.
std::vector<float> embedding_grad(Backend& be, const std::vector<int32_t>& ids, const std::vector<float>& dy,
                                  const std::vector<float>& dtable0, int64_t V, int64_t D) {
  Tensor dt = from_host(be, {V, D}, dtable0), tdy = from_host(be, {static_cast<int64_t>(ids.size()), D}, dy);
  be.embedding_backward(ids_from_host(be, ids), tdy, dt);
  return to_host(be, dt);
}

TEST(CpuEmbedding, BackwardAccumulatesRepeatedIdsInTokenOrder) {
  CpuBackend be(1);
  const int64_t V = 6, D = 150;  // three 64-column slices
  const std::vector<int32_t> ids{2, 5, 2, 0, 2, 5, 4};
  auto dy = random_uniform(ids.size() * D, -1, 1, 22), dt0 = random_uniform(V * D, -1, 1, 23);
  auto got = embedding_grad(be, ids, dy, dt0, V, D);
  // The contract: each row adds its contributions in increasing token order, onto what was
  // there. A float loop in that order is bitwise what the backend must produce.
  std::vector<float> want = dt0;
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t d = 0; d < D; ++d) want[ids[i] * D + d] += dy[i * D + d];
  EXPECT_EQ(got, want);
  for (int64_t d = 0; d < D; ++d) EXPECT_EQ(got[3 * D + d], dt0[3 * D + d]);  // row 3: no token, unchanged
}

TEST(CpuEmbedding, BackwardBitwiseIndependentOfThreadCount) {
  const int64_t V = 9, D = 200;
  std::vector<int32_t> ids(40);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 7) % 5);  // many repeats
  auto dy = random_uniform(ids.size() * D, -1, 1, 24), dt0 = random_uniform(V * D, -1, 1, 25);
  std::vector<float> one, two;
  {
    CpuBackend be(1);
    one = embedding_grad(be, ids, dy, dt0, V, D);
  }
  {
    CpuBackend be(2);
    two = embedding_grad(be, ids, dy, dt0, V, D);
  }
  EXPECT_EQ(one, two);
}

// ------------------------------------------------------------------------------ add

TEST(CpuAdd, ElementwiseAndInPlace) {
  CpuBackend be(1);
  auto a = random_uniform(1001, -1, 1, 31), b = random_uniform(1001, -1, 1, 32);
  Tensor ta = from_host(be, {7, 143}, a), tb = from_host(be, {1001}, b), y = be.alloc({1001}, DType::kFloat32);
  be.add(ta, tb, y);
  auto yh = to_host(be, y);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(yh[i], a[i] + b[i]) << i;
  be.add(ta, tb, ta);  // y may alias a
  EXPECT_EQ(to_host(be, ta), yh);
}

// ------------------------------------------------------------------------ GELU-tanh

double gelu_tanh_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

TEST(CpuGeluTanh, ForwardMatchesTanhFormula) {
  CpuBackend be(1);
  std::vector<float> x = random_uniform(2000, -8.0f, 8.0f, 41);
  for (float v : {0.0f, 1e-6f, -1e-6f, 30.0f, -30.0f, 100.0f, -100.0f}) x.push_back(v);  // tails: no inf or NaN
  std::vector<float> y(x.size());
  be.activation_forward(Activation::kGeluTanh, x.data(), y.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = gelu_tanh_ref(x[i]);
    ASSERT_NEAR(y[i], want, 1e-6 + 2e-6 * std::fabs(want)) << "x=" << x[i];
  }
}

TEST(CpuGeluTanh, BackwardMatchesFiniteDifferences) {
  CpuBackend be(1);
  std::vector<float> x = random_uniform(2000, -8.0f, 8.0f, 42);
  for (float v : {0.0f, 30.0f, -30.0f, 100.0f, -100.0f}) x.push_back(v);
  const int64_t n = static_cast<int64_t>(x.size());
  auto dy = random_uniform(n, -2.0f, 2.0f, 43);
  std::vector<float> dx(n);
  be.activation_backward(Activation::kGeluTanh, x.data(), dy.data(), dx.data(), n);
  const double h = 1e-5;  // central differences of the formula in double: error ~1e-10
  for (int64_t i = 0; i < n; ++i) {
    const double deriv = (gelu_tanh_ref(x[i] + h) - gelu_tanh_ref(x[i] - h)) / (2 * h);
    ASSERT_NEAR(dx[i], dy[i] * deriv, 1e-5 * (1 + std::fabs(dy[i] * deriv))) << "x=" << x[i];
  }
}

TEST(CpuGeluTanh, BitwiseIndependentOfThreadCount) {
  auto x = random_uniform(5000, -6.0f, 6.0f, 44), dy = random_uniform(5000, -1.0f, 1.0f, 45);
  std::vector<float> y1(5000), d1(5000), y2(5000), d2(5000);
  {
    CpuBackend be(1);
    be.activation_forward(Activation::kGeluTanh, x.data(), y1.data(), 5000);
    be.activation_backward(Activation::kGeluTanh, x.data(), dy.data(), d1.data(), 5000);
  }
  {
    CpuBackend be(2);
    be.activation_forward(Activation::kGeluTanh, x.data(), y2.data(), 5000);
    be.activation_backward(Activation::kGeluTanh, x.data(), dy.data(), d2.data(), 5000);
  }
  EXPECT_EQ(y1, y2);
  EXPECT_EQ(d1, d2);
}

}  // namespace
}  // namespace shardtrain

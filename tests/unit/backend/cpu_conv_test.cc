// im2col / col2im and max pooling against naive loops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "test_random.h"

namespace shardtrain {
namespace {

// Uniform in [-1, 1), seeded.
std::vector<float> rnd(int64_t n, uint32_t seed) { return testing::random_uniform(n, -1.0f, 1.0f, seed); }

ConvGeometry geom(int64_t c, int64_t h, int64_t w, int64_t k, int64_t s, int64_t p) {
  return ConvGeometry{c, h, w, k, s, p, (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1};
}

const ConvGeometry kGeometries[] = {
    geom(1, 5, 5, 3, 1, 1), geom(2, 6, 5, 3, 2, 1), geom(3, 7, 4, 2, 1, 0),
    geom(2, 4, 4, 3, 3, 2), geom(1, 3, 3, 3, 1, 0), geom(2, 8, 9, 5, 2, 2),
};

// Batch sizes 1 and 3: sample n owns columns [n * col_cols, (n + 1) * col_cols).
TEST(CpuBackendConv, Im2colMatchesNaive) {
  CpuBackend be(2);
  for (const ConvGeometry& g : kGeometries) {
    for (int64_t batch : {1, 3}) {
      const int64_t in_sz = g.channels * g.height * g.width, ld = batch * g.col_cols();
      auto x = rnd(batch * in_sz, 1);
      std::vector<float> cols(g.col_rows() * ld, 42.0f);
      be.im2col(x.data(), g, batch, cols.data());
      for (int64_t n = 0; n < batch; ++n)
        for (int64_t c = 0; c < g.channels; ++c)
          for (int64_t kh = 0; kh < g.kernel; ++kh)
            for (int64_t kw = 0; kw < g.kernel; ++kw)
              for (int64_t oh = 0; oh < g.out_height; ++oh)
                for (int64_t ow = 0; ow < g.out_width; ++ow) {
                  const int64_t ih = oh * g.stride - g.padding + kh, iw = ow * g.stride - g.padding + kw;
                  const bool in = ih >= 0 && ih < g.height && iw >= 0 && iw < g.width;
                  const float ref = in ? x[n * in_sz + (c * g.height + ih) * g.width + iw] : 0.0f;
                  const int64_t row = (c * g.kernel + kh) * g.kernel + kw;
                  ASSERT_EQ(cols[row * ld + n * g.col_cols() + oh * g.out_width + ow], ref);
                }
    }
  }
}

// col2im is the adjoint of im2col: <col2im(a), b> == <a, im2col(b)>.
TEST(CpuBackendConv, Col2imIsAdjointOfIm2col) {
  CpuBackend be(2);
  for (const ConvGeometry& g : kGeometries) {
    for (int64_t batch : {1, 3}) {
      const int64_t nx = batch * g.channels * g.height * g.width, nc = g.col_rows() * batch * g.col_cols();
      auto a = rnd(nc, 2), b = rnd(nx, 3);
      std::vector<float> ca(nx, 42.0f), ib(nc);
      be.col2im(a.data(), g, batch, ca.data());
      be.im2col(b.data(), g, batch, ib.data());
      double lhs = 0, rhs = 0;
      for (int64_t i = 0; i < nx; ++i) lhs += static_cast<double>(ca[i]) * b[i];
      for (int64_t i = 0; i < nc; ++i) rhs += static_cast<double>(a[i]) * ib[i];
      EXPECT_NEAR(lhs, rhs, 1e-4 * (1 + std::fabs(rhs)));
    }
  }
}

// Each sample of a batched col2im equals a batch-1 col2im of that sample's columns.
TEST(CpuBackendConv, Col2imBatchMatchesPerSample) {
  CpuBackend be(2);
  const int64_t batch = 3;
  for (const ConvGeometry& g : kGeometries) {
    const int64_t in_sz = g.channels * g.height * g.width, hw = g.col_cols(), ld = batch * hw;
    auto cols = rnd(g.col_rows() * ld, 6);
    std::vector<float> dx(batch * in_sz, 42.0f);
    be.col2im(cols.data(), g, batch, dx.data());
    for (int64_t n = 0; n < batch; ++n) {
      std::vector<float> one(g.col_rows() * hw), ref(in_sz, 42.0f);
      for (int64_t r = 0; r < g.col_rows(); ++r)
        std::copy_n(cols.data() + r * ld + n * hw, hw, one.data() + r * hw);
      be.col2im(one.data(), g, 1, ref.data());
      for (int64_t i = 0; i < in_sz; ++i) ASSERT_EQ(dx[n * in_sz + i], ref[i]);
    }
  }
}

TEST(CpuBackendConv, MaxPoolForwardBackward) {
  CpuBackend be(2);
  for (int64_t k : {2, 3}) {
    for (int64_t s : {1, 2}) {
      PoolGeometry g{2, 3, 7, 6, k, s, (7 - k) / s + 1, (6 - k) / s + 1};
      const int64_t in_sz = g.height * g.width, out_sz = g.out_height * g.out_width;
      const int64_t planes = g.batch * g.channels;
      auto x = rnd(planes * in_sz, 4);
      std::vector<float> y(planes * out_sz), dy = rnd(planes * out_sz, 5), dx(planes * in_sz, 42.0f);
      std::vector<int32_t> argmax(planes * out_sz);
      be.maxpool2d_forward(x.data(), g, y.data(), argmax.data());
      be.maxpool2d_backward(dy.data(), argmax.data(), g, dx.data());
      std::vector<double> dref(planes * in_sz, 0.0);
      for (int64_t p = 0; p < planes; ++p)
        for (int64_t oh = 0; oh < g.out_height; ++oh)
          for (int64_t ow = 0; ow < g.out_width; ++ow) {
            int64_t best = -1;
            for (int64_t kh = 0; kh < k; ++kh)
              for (int64_t kw = 0; kw < k; ++kw) {
                const int64_t idx = (oh * s + kh) * g.width + ow * s + kw;
                if (best < 0 || x[p * in_sz + idx] > x[p * in_sz + best]) best = idx;
              }
            const int64_t o = p * out_sz + oh * g.out_width + ow;
            ASSERT_EQ(argmax[o], best);
            ASSERT_EQ(y[o], x[p * in_sz + best]);
            dref[p * in_sz + best] += dy[o];
          }
      for (int64_t i = 0; i < planes * in_sz; ++i) EXPECT_NEAR(dx[i], dref[i], 1e-6);
    }
  }
}

TEST(CpuBackendConv, MaxPoolTiesPickFirst) {
  CpuBackend be(1);
  PoolGeometry g{1, 1, 2, 2, 2, 2, 1, 1};
  std::vector<float> x{1.0f, 3.0f, 3.0f, 3.0f}, y(1);
  std::vector<int32_t> argmax(1);
  be.maxpool2d_forward(x.data(), g, y.data(), argmax.data());
  EXPECT_EQ(y[0], 3.0f);
  EXPECT_EQ(argmax[0], 1);
}

}  // namespace
}  // namespace shardtrain

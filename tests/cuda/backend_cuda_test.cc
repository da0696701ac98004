// CudaBackend against the CPU reference, part 1: creation, memory, the sticky error, GEMM,
// bias, axis swaps, elementwise ops and dropout. (Part 2, backend_cuda_ops_test.cc:
// convolution, pooling, loss, reductions, optimizers, gradient buckets.)
//
// Every GPU test skips with the reason on a machine without a usable GPU. Two host-only
// tests at the end run exactly there instead: the UUID format and the error create()
// gives when there is no GPU.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <regex>

#include "backend_compare.h"

namespace shardtrain {
namespace {

using testing::expect_close;
using testing::expect_same;
using testing::rms;
using testing::rnd;

class CudaBackendTest : public testing::CudaVsCpuTest {};

// ------------------------------------------------------------------ identity, memory

TEST_F(CudaBackendTest, NameIdentityAndSynchronize) {
  EXPECT_EQ(gpu_->device(), Device::kCuda);
  EXPECT_EQ(gpu_->ordinal(), 0);
  EXPECT_NE(gpu_->stream(), nullptr);
  EXPECT_TRUE(std::regex_match(gpu_->name(), std::regex(R"(cuda:0 \(.+, sm_[0-9]+\))"))) << gpu_->name();
  const std::string hex = "[0-9a-f]";
  const std::regex uuid("GPU-" + hex + "{8}-" + hex + "{4}-" + hex + "{4}-" + hex + "{4}-" + hex + "{12}");
  EXPECT_TRUE(std::regex_match(gpu_->device_identity(), uuid)) << gpu_->device_identity();
  cudaDeviceProp prop;
  ASSERT_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
  EXPECT_EQ(gpu_->device_identity(), gpu_uuid_string(prop.uuid));
  EXPECT_TRUE(gpu_->synchronize().ok());
  EXPECT_TRUE(gpu_->status().ok());
}

TEST_F(CudaBackendTest, AllocIsZeroFilledEvenOnReusedMemory) {
  for (int64_t n : {0, 1, 3, 1000, 1 << 20}) {
    Tensor f = gpu_->alloc({n}, DType::kFloat32);
    Tensor i = gpu_->alloc({n}, DType::kInt32);
    ASSERT_TRUE(f.defined() && i.defined()) << n;  // an empty tensor still has storage
    expect_same(down(f), std::vector<float>(n, 0.0f), "float " + std::to_string(n));
    expect_same(down<int32_t>(i), std::vector<int32_t>(n, 0), "int32 " + std::to_string(n));
  }
  // Freed memory comes back dirty from the driver's point of view; alloc must zero it.
  Tensor dirty = gpu_->alloc({1 << 20}, DType::kFloat32);
  gpu_->fill(dirty, 7.0f);
  ASSERT_TRUE(gpu_->synchronize().ok());
  dirty = Tensor();
  expect_same(down(gpu_->alloc({1 << 20}, DType::kFloat32)), std::vector<float>(1 << 20, 0.0f), "reused");
}

TEST_F(CudaBackendTest, MemcpyRoundTripFromPageableAndPinnedMemory) {
  const auto host = rnd(100003, 1);
  expect_same(down(up(host)), host, "pageable round trip");

  // From pinned memory the DMA runs after cudaMemcpyAsync returns. The contract lets the
  // caller reuse the source at once, so clobbering it right after the call (while a big
  // fill queued first is still running) must not change what arrives.
  const int64_t n = 16 << 20;
  float* pinned = nullptr;
  ASSERT_EQ(cudaMallocHost(reinterpret_cast<void**>(&pinned), n * sizeof(float)), cudaSuccess);
  for (int64_t i = 0; i < n; ++i) pinned[i] = static_cast<float>(i % 1000);
  Tensor busy = gpu_->alloc({n}, DType::kFloat32), dst = gpu_->alloc({n}, DType::kFloat32);
  for (int r = 0; r < 20; ++r) gpu_->fill(busy, static_cast<float>(r));
  gpu_->memcpy_from_host(dst.f32(), pinned, n * sizeof(float));
  for (int64_t i = n - 1; i >= n - 1024; --i) pinned[i] = -1.0f;
  const auto got = down(dst);
  ASSERT_EQ(cudaFreeHost(pinned), cudaSuccess);
  for (int64_t i = n - 1024; i < n; ++i) ASSERT_EQ(got[i], static_cast<float>(i % 1000)) << i;
}

TEST_F(CudaBackendTest, FillFloatAndInt32AndCopy) {
  const int64_t n = 1000003;
  for (float v : {3.25f, 7.9f, -2.5f}) {
    Tensor f = gpu_->alloc({n}, DType::kFloat32), i = gpu_->alloc({n}, DType::kInt32);
    Tensor ci = cpu_.alloc({n}, DType::kInt32);
    gpu_->fill(f, v);
    gpu_->fill(i, v);
    cpu_.fill(ci, v);  // int32: truncated toward zero
    const std::string what = "fill " + std::to_string(v);
    expect_same(down(f), std::vector<float>(n, v), what);
    expect_same(down<int32_t>(i), std::vector<int32_t>(ci.data<int32_t>(), ci.data<int32_t>() + n), what);
  }
  const auto host = rnd(n, 2);
  Tensor a = up(host), b = gpu_->alloc({n}, DType::kFloat32);
  gpu_->copy(a, b);
  expect_same(down(b), host, "copy");
}

// ------------------------------------------------------------------------ sticky error

TEST_F(CudaBackendTest, StickyErrorKeepsTheFirstFailureAndStopsLaterWork) {
  expect_failed_backend_ = true;
  Tensor t = up(rnd(16, 3));
  ASSERT_TRUE(gpu_->synchronize().ok());
  // A null host source is rejected by the driver up front (cudaErrorInvalidValue): a real
  // CUDA error, reported synchronously, that touches no device memory, so the context
  // stays usable for the rest of this process.
  gpu_->memcpy_from_host(t.f32(), nullptr, 16 * sizeof(float));
  const Status first = gpu_->status();
  ASSERT_FALSE(first.ok());
  // "cuda:0: memcpy_from_host: cudaMemcpyAsync(...) failed: cudaErrorInvalidValue (...)"
  EXPECT_EQ(first.message().rfind("cuda:0: memcpy_from_host: cudaMemcpyAsync", 0), 0u) << first.message();
  EXPECT_NE(first.message().find("failed: cudaError"), std::string::npos) << first.message();

  // Later primitives do nothing: the device keeps its values, the host buffer too.
  gpu_->fill(t, 5.0f);
  std::vector<float> host(16, -7.0f);
  gpu_->memcpy_to_host(host.data(), t.f32(), 16 * sizeof(float));
  EXPECT_EQ(host, std::vector<float>(16, -7.0f));
  EXPECT_EQ(gpu_->sum(t.f32(), 16), 0.0);
  // A second failure does not replace the first; synchronize() reports the first.
  Tensor small = gpu_->alloc({3}, DType::kFloat32);
  gpu_->copy(t, small);
  EXPECT_EQ(gpu_->status().message(), first.message());
  const Status synced = gpu_->synchronize();
  EXPECT_FALSE(synced.ok());
  EXPECT_EQ(synced.message(), first.message());

  // The error was reported once, by its call: a new backend on the same device is healthy
  // (no stale "last error" for its first kernel launch to pick up).
  auto fresh = CudaBackend::create(0);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  Tensor u = (*fresh)->alloc({16}, DType::kFloat32);
  (*fresh)->fill(u, 5.0f);
  EXPECT_EQ(testing::download(**fresh, u), std::vector<float>(16, 5.0f));
  EXPECT_TRUE((*fresh)->synchronize().ok()) << (*fresh)->status().ToString();
}

TEST_F(CudaBackendTest, ArgumentErrorsAreStickyAndNameThePrimitive) {
  expect_failed_backend_ = true;
  Tensor a = gpu_->alloc({4}, DType::kFloat32), b = gpu_->alloc({5}, DType::kFloat32);
  gpu_->copy(a, b);
  EXPECT_EQ(gpu_->synchronize().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu_->status().message().rfind("cuda:0: copy: ", 0), 0u) << gpu_->status().message();

  // cuBLAS takes int dimensions; a larger one is refused before anything is launched.
  auto other = CudaBackend::create(0);
  ASSERT_TRUE(other.ok());
  const int64_t huge = int64_t{std::numeric_limits<int>::max()} + 1;
  (*other)->gemm(GemmOp::kNoTrans, GemmOp::kNoTrans, huge, 1, 1, 1.0f, a.f32(), a.f32(), 0.0f, b.f32());
  EXPECT_EQ((*other)->synchronize().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*other)->status().message().rfind("cuda:0: gemm: ", 0), 0u) << (*other)->status().message();
}

// ----------------------------------------------------------------------------- dense

TEST_F(CudaBackendTest, GemmAllTransposeCombinationsAndOddSizes) {
  struct Dims {
    int64_t m, n, k;
  };
  uint32_t seed = 10;
  for (Dims d : {Dims{5, 7, 3}, Dims{33, 17, 65}, Dims{1, 1, 1}, Dims{64, 96, 40}, Dims{7, 1, 13}, Dims{1, 9, 2}}) {
    for (GemmOp oa : {GemmOp::kNoTrans, GemmOp::kTrans}) {
      for (GemmOp ob : {GemmOp::kNoTrans, GemmOp::kTrans}) {
        for (float beta : {0.25f, 0.0f}) {
          const auto a = rnd(d.m * d.k, seed++), b = rnd(d.k * d.n, seed++);
          auto c = rnd(d.m * d.n, seed++);
          if (beta == 0.0f) c.assign(c.size(), NAN);  // beta = 0: C's old contents are ignored
          Tensor ga = up(a), gb = up(b), gc = up(c);
          cpu_.gemm(oa, ob, d.m, d.n, d.k, 0.5f, a.data(), b.data(), beta, c.data());
          gpu_->gemm(oa, ob, d.m, d.n, d.k, 0.5f, ga.f32(), gb.f32(), beta, gc.f32());
          expect_close(down(gc), c, rms(c),
                       "gemm " + std::to_string(d.m) + "x" + std::to_string(d.n) + "x" + std::to_string(d.k) +
                           " ta=" + std::to_string(int(oa)) + " tb=" + std::to_string(int(ob)) +
                           " beta=" + std::to_string(beta));
        }
      }
    }
  }
}

TEST_F(CudaBackendTest, GemmWithEmptyDimensions) {
  const auto c0 = rnd(12, 20);
  Tensor a = gpu_->alloc({1}, DType::kFloat32);
  for (float beta : {0.5f, 1.0f, 0.0f}) {  // k == 0: C = beta * C, even for beta = 0 over NaN
    auto c = c0;
    if (beta == 0.0f) c[3] = NAN;
    Tensor gc = up(c);
    cpu_.gemm(GemmOp::kNoTrans, GemmOp::kTrans, 3, 4, 0, 1.0f, nullptr, nullptr, beta, c.data());
    gpu_->gemm(GemmOp::kNoTrans, GemmOp::kTrans, 3, 4, 0, 1.0f, a.f32(), a.f32(), beta, gc.f32());
    EXPECT_EQ(down(gc), c) << "beta " << beta;
  }
  // m == 0 or n == 0: nothing is written.
  Tensor gc = up(c0);
  gpu_->gemm(GemmOp::kNoTrans, GemmOp::kNoTrans, 0, 4, 3, 1.0f, a.f32(), a.f32(), 0.0f, gc.f32());
  gpu_->gemm(GemmOp::kNoTrans, GemmOp::kNoTrans, 3, 0, 3, 1.0f, a.f32(), a.f32(), 0.0f, gc.f32());
  EXPECT_EQ(down(gc), c0);
}

TEST_F(CudaBackendTest, BiasAddAndBiasGrad) {
  struct Dims {
    int64_t outer, channels, inner;
  };
  uint32_t seed = 30;
  for (Dims d : {Dims{3, 4, 5}, Dims{1, 10, 1}, Dims{64, 16, 1}, Dims{7, 3, 197}, Dims{2, 1, 5000}, Dims{300, 2, 70}}) {
    const std::string what = "[" + std::to_string(d.outer) + "," + std::to_string(d.channels) + "," +
                             std::to_string(d.inner) + "]";
    auto y = rnd(d.outer * d.channels * d.inner, seed++);
    const auto b = rnd(d.channels, seed++);
    Tensor gy = up(y), gb = up(b);
    cpu_.bias_add(y.data(), b.data(), d.outer, d.channels, d.inner);
    gpu_->bias_add(gy.f32(), gb.f32(), d.outer, d.channels, d.inner);
    expect_same(down(gy), y, "bias_add " + what);  // one fp32 add per element: exact
    // bias_grad accumulates onto what db holds.
    const auto db0 = rnd(d.channels, seed++);
    std::vector<float> db = db0;
    Tensor gdb = up(db0);
    cpu_.bias_grad(y.data(), db.data(), d.outer, d.channels, d.inner);
    gpu_->bias_grad(gy.f32(), gdb.f32(), d.outer, d.channels, d.inner);
    const auto got = down(gdb);
    expect_close(got, db, rms(y) * std::sqrt(double(d.outer * d.inner)), "bias_grad " + what);
    // Fixed reduction order: the same input gives the same bits.
    Tensor again = up(db0);
    gpu_->bias_grad(gy.f32(), again.f32(), d.outer, d.channels, d.inner);
    expect_same(down(again), got, "bias_grad rerun " + what);
  }
}

TEST_F(CudaBackendTest, SwapOuterAxes) {
  uint32_t seed = 40;
  for (auto [a, b, inner] : {std::array<int64_t, 3>{3, 5, 7}, {1, 4, 2}, {4, 1, 3}, {2, 3, 1}, {16, 24, 196}}) {
    const auto x = rnd(a * b * inner, seed++);
    std::vector<float> y(x.size());
    Tensor gx = up(x), gy = gpu_->alloc({a * b * inner}, DType::kFloat32);
    cpu_.swap_outer_axes(x.data(), y.data(), a, b, inner);
    gpu_->swap_outer_axes(gx.f32(), gy.f32(), a, b, inner);
    expect_same(down(gy), y, "swap " + std::to_string(a) + "x" + std::to_string(b) + "x" + std::to_string(inner));
  }
}

// ------------------------------------------------------------------------ elementwise

TEST_F(CudaBackendTest, ActivationsForwardAndBackward) {
  const int64_t n = 100003;
  auto x = rnd(n, 50, -4.0f, 4.0f);
  x[0] = x[17] = 0.0f;  // ReLU's kink: subgradient 0 on both
  const auto dy = rnd(n, 51);
  Tensor gx = up(x), gdy = up(dy), gy = gpu_->alloc({n}, DType::kFloat32), gdx = gpu_->alloc({n}, DType::kFloat32);
  std::vector<float> y(n), dx(n);
  for (Activation act : {Activation::kRelu, Activation::kGelu, Activation::kGeluTanh}) {
    const bool relu = act == Activation::kRelu;
    cpu_.activation_forward(act, x.data(), y.data(), n);
    gpu_->activation_forward(act, gx.f32(), gy.f32(), n);
    cpu_.activation_backward(act, x.data(), dy.data(), dx.data(), n);
    gpu_->activation_backward(act, gx.f32(), gdy.f32(), gdx.f32(), n);
    if (relu) {  // selections, no arithmetic: exact
      expect_same(down(gy), y, "relu forward");
      expect_same(down(gdx), dx, "relu backward");
    } else {
      // Floor 0.1: for x << 0, 1 + erf(x / sqrt 2) (or 1 + tanh(u)) cancels, so the
      // last-ulp difference between glibc's and CUDA's erff / tanhf (~1e-7 absolute) is
      // all that is left of the value.
      const std::string name = act == Activation::kGelu ? "gelu" : "gelu tanh";
      expect_close(down(gy), y, 0.1, name + " forward");
      expect_close(down(gdx), dx, 0.1, name + " backward");
    }
  }
}

TEST_F(CudaBackendTest, DropoutMatchesTheCpuMaskAndIgnoresHowTheCallIsSplit) {
  const int64_t n = 100001;
  const auto x = rnd(n, 60, 0.5f, 1.5f);  // no zeros: y == 0 exactly where dropped
  Tensor gx = up(x), gy = gpu_->alloc({n}, DType::kFloat32), parts = gpu_->alloc({n}, DType::kFloat32);
  for (float p : {0.1f, 0.5f, 0.9f, 0.0f, 1.0f}) {
    const DropoutKey key{7, 3, 100};
    std::vector<float> y(n);
    cpu_.dropout(x.data(), y.data(), n, p, key);
    gpu_->dropout(gx.f32(), gy.f32(), n, p, key);
    const auto got = down(gy);
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(got[i] == 0.0f, y[i] == 0.0f) << "p " << p << " element " << i;
      zeros += y[i] == 0.0f;
    }
    if (p > 0.0f && p < 1.0f) {
      EXPECT_NEAR(double(zeros) / n, p, 0.01) << p;
    }
    expect_close(got, y, 1e-2, "dropout p=" + std::to_string(p));
    // The same range in three calls, each keyed by its first element's global index.
    const int64_t cuts[] = {0, 1, 37777, n};
    for (int c = 0; c < 3; ++c) {
      gpu_->dropout(gx.f32() + cuts[c], parts.f32() + cuts[c], cuts[c + 1] - cuts[c], p,
                    DropoutKey{7, 3, 100 + static_cast<uint64_t>(cuts[c])});
    }
    expect_same(down(parts), got, "dropout in three calls, p=" + std::to_string(p));
  }
}

TEST_F(CudaBackendTest, ScaleAndScaleByZeroClearsNanAndInf) {
  auto x = rnd(100003, 70);
  Tensor gx = up(x);
  cpu_.scale(x.data(), static_cast<int64_t>(x.size()), -0.75f);
  gpu_->scale(gx.f32(), static_cast<int64_t>(x.size()), -0.75f);
  expect_same(down(gx), x, "scale");  // one multiply per element: exact
  std::vector<float> bad = {NAN, INFINITY, -INFINITY, 1.0f, -3.0f};
  Tensor gb = up(bad);
  gpu_->scale(gb.f32(), 5, 0.0f);
  EXPECT_EQ(down(gb), std::vector<float>(5, 0.0f));
}

// ------------------------------------------------------------------- host-only checks

TEST(CudaBackendHost, GpuUuidStringIsNvidiaSmiForm) {
  cudaUUID_t uuid;
  for (int i = 0; i < 16; ++i) uuid.bytes[i] = static_cast<char>(i == 15 ? 0xff : i * 17);
  EXPECT_EQ(gpu_uuid_string(uuid), "GPU-00112233-4455-6677-8899-aabbccddeeff");
}

TEST(CudaBackendHost, CreateWithoutAGpuIsUnavailableWithTheReason) {
  if (testing::cuda_unusable_reason().empty()) GTEST_SKIP() << "a GPU is usable here (this covers machines without one)";
  auto be = CudaBackend::create(0);
  ASSERT_FALSE(be.ok());
  EXPECT_EQ(be.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(be.status().message().find("no usable GPU"), std::string::npos) << be.status().message();
  EXPECT_EQ(CudaBackend::create(-1).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shardtrain

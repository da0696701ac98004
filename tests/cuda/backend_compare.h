// Shared by the CUDA-vs-CPU tests: moving vectors between the host and a backend, and
// comparing a GPU result with the CPU backend's (the reference).
//
// The comparison is relative, 1e-5, with a floor: |gpu - cpu| <= 1e-5 * max(|cpu|, floor).
// Why a floor: a value near zero is usually the result of cancellation (a sum of k terms
// of much larger magnitude, or 1 + erf(x) for x << 0 inside GELU), and its rounding error
// is set by the magnitude of those terms, not by its own, so a purely relative test would
// ask for more than fp32 can give whenever the two backends add in different orders.
// Each caller passes the magnitude of the terms that make up a value:
//   - elementwise ops on O(1) inputs: 1e-2, i.e. an absolute slack of 1e-7, about one
//     fp32 ulp of 1 (the rounding of an O(1) intermediate);
//   - sums (GEMM, bias_grad, col2im, gradients) and running sums (optimizer state and
//     parameters over steps): the RMS of the reference tensor, the typical size of what
//     was added up.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "cuda_test_util.h"
#include "test_random.h"

namespace shardtrain {
namespace testing {

constexpr double kGpuRtol = 1e-5;

// Root mean square of v (0 for an empty v).
inline double rms(const std::vector<float>& v) {
  double s = 0.0;
  for (float x : v) s += static_cast<double>(x) * x;
  return v.empty() ? 0.0 : std::sqrt(s / static_cast<double>(v.size()));
}

// Elementwise |gpu - cpu| <= rtol * max(|cpu|, floor); NaN never passes. Reports the
// first few mismatches and how many there were. rtol is kGpuRtol except where a kernel
// legitimately rounds differently (attention: 1e-4).
inline void expect_close(const std::vector<float>& gpu, const std::vector<float>& cpu, double floor,
                         const std::string& what, double rtol = kGpuRtol) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  size_t bad = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double ref = cpu[i], got = gpu[i];
    const double tol = rtol * std::max(std::fabs(ref), floor);
    if (!(std::fabs(got - ref) <= tol)) {
      if (++bad <= 5) ADD_FAILURE() << what << "[" << i << "]: gpu " << got << " cpu " << ref << " (tol " << tol << ")";
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << cpu.size() << " elements differ";
}

// Exact equality (== per element, so NaN never passes), reporting the first mismatch
// instead of printing two million-element vectors.
template <typename T>
void expect_same(const std::vector<T>& gpu, const std::vector<T>& cpu, const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  for (size_t i = 0; i < cpu.size(); ++i) {
    if (!(gpu[i] == cpu[i])) {
      ADD_FAILURE() << what << "[" << i << "]: gpu " << gpu[i] << " cpu " << cpu[i] << " (first mismatch)";
      return;
    }
  }
}

// A backend tensor holding `host` (shape [host.size()] unless given).
template <typename T>
Tensor upload(Backend& be, const std::vector<T>& host, Shape shape = {}) {
  static_assert(std::is_same<T, float>::value || std::is_same<T, int32_t>::value, "float or int32_t");
  if (shape.empty()) shape = {static_cast<int64_t>(host.size())};
  Tensor t = be.alloc(shape, std::is_same<T, int32_t>::value ? DType::kInt32 : DType::kFloat32);
  be.copy_from_host(t, host.data());
  return t;
}

template <typename T = float>
std::vector<T> download(Backend& be, const Tensor& t) {
  std::vector<T> host(static_cast<size_t>(t.numel()));
  be.copy_to_host(t, host.data());
  return host;
}

// Uniform in [lo, hi), seeded.
inline std::vector<float> rnd(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  return random_uniform(n, lo, hi, seed);
}

// A CUDA backend on device 0 and the CPU reference. Skips (with the reason) without a
// GPU; after each test, checks that the device recorded no error unless the test says
// it expects one.
class CudaVsCpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ST_SKIP_WITHOUT_GPU();
    auto made = CudaBackend::create(0);
    ASSERT_TRUE(made.ok()) << made.status().ToString();
    gpu_ = std::move(made).value();
  }
  void TearDown() override {
    if (!gpu_ || expect_failed_backend_) return;
    const Status s = gpu_->synchronize();
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  template <typename T>
  Tensor up(const std::vector<T>& host) { return upload(*gpu_, host); }
  template <typename T = float>
  std::vector<T> down(const Tensor& t) { return download<T>(*gpu_, t); }

  CpuBackend cpu_{1};
  std::unique_ptr<CudaBackend> gpu_;
  bool expect_failed_backend_ = false;
};

}  // namespace testing
}  // namespace shardtrain

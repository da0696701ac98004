// Shared by the kernel-level bf16 tests: device buffers, host bf16 rounding, and the one
// comparison those tests make.
//
// Every bf16 launcher promises (kernels/*.h, "---- bf16") to compute exactly what its fp32
// twin computes on the widened inputs and to round once, to nearest-even, on the store.
// So each test draws inputs that are exactly representable in bf16, runs the fp32
// launcher on them as floats and the bf16 launcher on them as bf16, and asks for the bf16
// outputs to be the fp32 outputs rounded on the host (core/bfloat16.h rounds as
// __float2bfloat16_rn does), bit for bit; fp32 outputs of the bf16 launchers (statistics,
// losses, master gradients) must be the fp32 launcher's bits. That is stricter than a
// tolerance: any difference in what the two instantiations compute shows up. NaN matches
// NaN whatever the payload (the device's canonical NaN is 0x7fff, the host's keeps the
// input's).
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/bfloat16.h"
#include "cuda_test_util.h"
#include "test_random.h"

namespace shardtrain {
namespace testing {

// Device memory for n elements of T, freed on destruction. Transfers synchronize the
// device first, so they see everything enqueued on any stream.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    if (n_ > 0) {
      EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&p_), n_ * sizeof(T)), cudaSuccess);
    }
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (p_ != nullptr) cudaFree(p_);
  }

  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    ASSERT_EQ(host.size(), n_);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    if (n_ > 0) {
      ASSERT_EQ(cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
    }
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    if (n_ > 0) {
      EXPECT_EQ(cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    }
    return host;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

inline std::vector<bf16> to_bf16(const std::vector<float>& v) {
  std::vector<bf16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = bf16_from_float(v[i]);
  return out;
}

inline std::vector<float> widen(const std::vector<bf16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = bf16_to_float(v[i]);
  return out;
}

// Uniform in [lo, hi), then rounded to bf16: values both launchers can be given exactly.
inline std::vector<float> bf16_exact_uniform(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  return widen(to_bf16(random_uniform(n, lo, hi, seed)));
}

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// got[i] has the bits of ref[i] (NaN matches NaN). Reports the first few mismatches.
inline void expect_same_bits(const std::vector<float>& got, const std::vector<float>& ref, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  size_t bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const bool same = std::isnan(ref[i]) ? std::isnan(got[i]) : float_bits(got[i]) == float_bits(ref[i]);
    if (!same && ++bad <= 5) ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << " want " << ref[i];
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << ref.size() << " elements differ";
}

// got[i] is ref[i] rounded to bf16 (nearest-even; NaN matches NaN). On a mismatch also
// reports the relative difference, to tell a rounding slip from a wrong result.
inline void expect_rounded(const std::vector<bf16>& got, const std::vector<float>& ref, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  size_t bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const bf16 want = bf16_from_float(ref[i]);
    const bool same = std::isnan(ref[i]) ? std::isnan(bf16_to_float(got[i])) : got[i].bits == want.bits;
    if (!same && ++bad <= 5) {
      const double g = bf16_to_float(got[i]), r = ref[i];
      ADD_FAILURE() << what << "[" << i << "]: got " << g << " want " << bf16_to_float(want) << " (fp32 " << r
                    << ", relative difference " << std::fabs(g - r) / std::max(std::fabs(r), 1e-30) << ")";
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << ref.size() << " elements differ";
}

// A stream for the launchers; skips (with the reason) without a GPU, and after each test
// checks that the device recorded no error.
class Bf16KernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ST_SKIP_WITHOUT_GPU();
    ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
  }
  void TearDown() override {
    if (stream_ == nullptr) return;
    EXPECT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    cudaStreamDestroy(stream_);
  }
  cudaStream_t stream_ = nullptr;
};

}  // namespace testing
}  // namespace shardtrain

// CpuBackend: memory, GEMM (OpenBLAS), bias, axis swaps, elementwise ops and dropout.
//
// Loops are OpenMP `parallel for` with static schedules. Nothing here reduces across
// threads except bias_grad, which gives each channel to exactly one thread and sums it in
// a fixed order, so results do not depend on the thread count at all.
#include "backend/cpu/cpu_backend.h"

#include <new>

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "backend/cpu/cpu_require.h"
#include "core/counter_rng.h"

namespace shardtrain {

CpuBackend::CpuBackend(int threads) : threads_(threads < 1 ? 1 : threads) {
  omp_set_num_threads(threads_);
  openblas_set_num_threads(threads_);
}

// The kernel family OpenBLAS picked for this CPU ("Haswell", "SkylakeX"; "Prescott" means
// it did not recognise the CPU and fell back to SSE3: OPENBLAS_CORETYPE=Haswell fixes that
// on AVX2 machines, see README).
std::string CpuBackend::name() const {
  const char* core = openblas_get_corename();
  return "cpu (OpenBLAS " + std::string(core ? core : "?") + ", " + std::to_string(threads_) +
         (threads_ == 1 ? " thread)" : " threads)");
}

void CpuBackend::fail(const char* primitive, const std::string& what) {
  cpu_require(false, primitive, what.c_str());
}

// ---------------------------------------------------------------------------- memory

Tensor CpuBackend::alloc(const Shape& shape, DType dtype) {
  // 64-byte alignment keeps AVX-512 loads aligned; aligned_alloc needs a size that is a
  // multiple of the alignment, and never 0 so an empty tensor still has storage.
  constexpr size_t kAlign = 64;
  size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  size_t padded = (bytes + kAlign - 1) / kAlign * kAlign;
  if (padded == 0) padded = kAlign;
  void* p = std::aligned_alloc(kAlign, padded);
  // Out of memory: like std::vector, throw; the rank dies and mpirun ends the job. Callers
  // (activations, scratch) cannot do anything useful with a missing buffer.
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, padded);
  return Tensor(shape, dtype, Device::kCpu, std::shared_ptr<void>(p, std::free));
}

void CpuBackend::memcpy_from_host(void* dst, const void* src, size_t bytes) {
  if (bytes > 0 && dst != src) std::memcpy(dst, src, bytes);
}
void CpuBackend::memcpy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes > 0 && dst != src) std::memcpy(dst, src, bytes);
}
void CpuBackend::copy(const Tensor& src, Tensor& dst) {
  if (src.data<char>() != dst.data<char>()) std::memcpy(dst.data<char>(), src.data<char>(), dst.nbytes());
}

void CpuBackend::fill(Tensor& t, float value) {
  const int64_t n = t.numel();
  if (t.dtype() == DType::kInt32) {
    int32_t* p = t.data<int32_t>();
    const int32_t v = static_cast<int32_t>(value);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = v;
    return;
  }
  float* p = t.f32();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

// ----------------------------------------------------------------------------- dense

void CpuBackend::gemm(GemmOp op_a, GemmOp op_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                      const float* b, float beta, float* c) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // BLAS may not touch C when k == 0; the contract says C = beta * C.
    scale(c, m * n, beta);
    return;
  }
  const bool ta = op_a == GemmOp::kTrans, tb = op_b == GemmOp::kTrans;
  // Row-major leading dimensions: A is [m, k] (or [k, m] transposed), B is [k, n] (or [n, k]).
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a,
              ta ? m : k, b, tb ? k : n, beta, c, n);
}

void CpuBackend::bias_add(float* y, const float* b, int64_t outer, int64_t channels, int64_t inner) {
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    float* block = y + o * channels * inner;
    if (inner == 1) {  // [rows, channels]: one contiguous row per o
      for (int64_t c = 0; c < channels; ++c) block[c] += b[c];
      continue;
    }
    for (int64_t c = 0; c < channels; ++c) {
      const float bv = b[c];
      float* row = block + c * inner;
      for (int64_t i = 0; i < inner; ++i) row[i] += bv;
    }
  }
}

void CpuBackend::bias_grad(const float* dy, float* db, int64_t outer, int64_t channels, int64_t inner) {
  // Each channel is summed in (o, i) order in double onto the existing value, by one
  // thread: deterministic for any thread count.
  if (inner == 1) {
    // [rows, channels] (linear layers): threads own blocks of channels and walk the rows
    // in order, so reads stay contiguous; the per-channel order is the same as below.
    constexpr int64_t kBlock = 64;
#pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < channels; c0 += kBlock) {
      const int64_t c1 = std::min(channels, c0 + kBlock);
      double acc[kBlock];
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] = db[c];
      for (int64_t o = 0; o < outer; ++o) {
        const float* row = dy + o * channels;
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] += row[c];
      }
      for (int64_t c = c0; c < c1; ++c) db[c] = static_cast<float>(acc[c - c0]);
    }
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < channels; ++c) {
    double acc = db[c];
    for (int64_t o = 0; o < outer; ++o) {
      const float* row = dy + (o * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) acc += row[i];
    }
    db[c] = static_cast<float>(acc);
  }
}

void CpuBackend::swap_outer_axes(const float* x, float* y, int64_t a, int64_t b, int64_t inner) {
  // Each (i, j) block is one contiguous row copy; every y block is written by one thread.
#pragma omp parallel for schedule(static)
  for (int64_t ij = 0; ij < a * b; ++ij) {
    const int64_t i = ij / b, j = ij % b;
    std::memcpy(y + (j * a + i) * inner, x + ij * inner, inner * sizeof(float));
  }
}

// ------------------------------------------------------------------------ elementwise

namespace {
constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
constexpr float kSqrt2OverPi = 0.79788456080286535588f;
constexpr float kGeluCubic = 0.044715f;

// sigmoid(2u) = (1 + tanh(u)) / 2 for GELU-tanh's u(x).
inline float gelu_tanh_sigmoid(float x) {
  const float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
  return 1.0f / (1.0f + std::exp(-2.0f * u));
}
}  // namespace

void CpuBackend::activation_forward(Activation act, const float* x, float* y, int64_t n) {
  switch (act) {
    case Activation::kRelu:
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
      return;
    case Activation::kGelu:  // exact: x * Phi(x), as torch.nn.GELU()
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * kInvSqrt2));
      return;
    case Activation::kGeluTanh:
      // 0.5 x (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3), computed as the equal
      // x * sigmoid(2u): one expf instead of tanhf (which was a fifth of a GPT step).
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] * gelu_tanh_sigmoid(x[i]);
      return;
  }
}

void CpuBackend::activation_backward(Activation act, const float* x, const float* dy, float* dx, int64_t n) {
  switch (act) {
    case Activation::kRelu:  // subgradient 0 at x == 0, as PyTorch
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
      return;
    case Activation::kGelu:  // d/dx [x Phi(x)] = Phi(x) + x phi(x)
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        const float cdf = 0.5f * (1.0f + std::erf(x[i] * kInvSqrt2));
        const float pdf = kInvSqrt2Pi * std::exp(-0.5f * x[i] * x[i]);
        dx[i] = dy[i] * (cdf + x[i] * pdf);
      }
      return;
    case Activation::kGeluTanh:  // d/dx [x s(2u)] = s + x s (1 - s) 2u', s = sigmoid(2u)
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        const float s = gelu_tanh_sigmoid(x[i]);
        const float du2 = 2.0f * kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x[i] * x[i]);
        dx[i] = dy[i] * (s + x[i] * s * (1.0f - s) * du2);
      }
      return;
  }
}

void CpuBackend::dropout(const float* x, float* y, int64_t n, float p, DropoutKey key) {
  if (p <= 0.0f) {
    if (x != y) std::memcpy(y, x, n * sizeof(float));
    return;
  }
  if (p >= 1.0f) {  // everything dropped; avoids 1 / (1 - p) = inf.
    std::memset(y, 0, n * sizeof(float));
    return;
  }
  const float keep_scale = 1.0f / (1.0f - p);
  const uint64_t base = counter_rng_base(key.seed, key.stream);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = counter_rng_uniform(base, key.offset + static_cast<uint64_t>(i)) >= p;
    y[i] = keep ? x[i] * keep_scale : 0.0f;
  }
}

void CpuBackend::scale(float* x, int64_t n, float alpha) {
  if (alpha == 0.0f) {  // also clears NaN/inf, as BLAS beta = 0 does
    std::memset(x, 0, n * sizeof(float));
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
}

}  // namespace shardtrain

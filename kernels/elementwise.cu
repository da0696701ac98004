// Elementwise kernels: fill, scale, add, activations, dropout, bias add / grad, axis swap.
//
// These are bandwidth-bound, so each is one grid-stride pass that reads and writes every
// element once; there is nothing to tile. What matters is that they reproduce the CPU
// backend's arithmetic (exactly, except where CUDA's erff/expf differ from glibc's by an
// ulp or two, i.e. GELU and its tanh form): every expression is written in the CPU code's operation order and
// the library compiles with --fmad=false, so a*b+c rounds twice here as it does there.
// Dropout draws from the counter-based generator with the element's global index, so its
// mask is the CPU's bit for bit, whatever the launch shape; its keep scale is computed on
// the host exactly as the CPU computes it. bias_grad is the only reduction: one block per
// channel sums in double with a fixed tree (no float atomics), so it is deterministic.
#include "kernels/elementwise.h"

#include "core/counter_rng.h"
#include "kernels/kernel_util.cuh"

namespace shardtrain::kernels {

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
constexpr float kSqrt2OverPi = 0.79788456080286535588f;
constexpr float kGeluCubic = 0.044715f;

template <typename T>
__global__ void fill_kernel(T* x, int64_t n, T value) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) x[i] = value;
}

__global__ void scale_kernel(float* x, int64_t n, float alpha) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) x[i] *= alpha;
}

// No __restrict__: y may alias a or b (each element is read, then written, by one thread).
template <typename T>
__global__ void add_kernel(const T* a, const T* b, T* y, int64_t n) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count())
    store_f32(y + i, load_f32(a + i) + load_f32(b + i));
}

__global__ void relu_forward_kernel(const float* x, float* y, int64_t n) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

// Exact GELU, x * Phi(x).
__global__ void gelu_forward_kernel(const float* x, float* y, int64_t n) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) {
    const float v = x[i];
    y[i] = 0.5f * v * (1.0f + erff(v * kInvSqrt2));
  }
}

// sigmoid(2u) = (1 + tanh(u)) / 2 for GPT-2's GELU, u = sqrt(2/pi) (x + 0.044715 x^3):
// the form the CPU backend computes, in its order.
__device__ __forceinline__ float gelu_tanh_sigmoid(float v) {
  const float u = kSqrt2OverPi * (v + kGeluCubic * v * v * v);
  return 1.0f / (1.0f + expf(-2.0f * u));
}

// GPT-2's GELU, 0.5 x (1 + tanh(u)) = x sigmoid(2u).
__global__ void gelu_tanh_forward_kernel(const float* x, float* y, int64_t n) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) y[i] = x[i] * gelu_tanh_sigmoid(x[i]);
}

// Subgradient 0 at x == 0, as PyTorch.
__global__ void relu_backward_kernel(const float* x, const float* dy, float* dx, int64_t n) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

// d/dx [x Phi(x)] = Phi(x) + x phi(x).
__global__ void gelu_backward_kernel(const float* x, const float* dy, float* dx, int64_t n) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) {
    const float v = x[i];
    const float cdf = 0.5f * (1.0f + erff(v * kInvSqrt2));
    const float pdf = kInvSqrt2Pi * expf(-0.5f * v * v);
    dx[i] = dy[i] * (cdf + v * pdf);
  }
}

// d/dx [x s(2u)] = s + x s (1 - s) 2u', s = sigmoid(2u), in the CPU's order.
__global__ void gelu_tanh_backward_kernel(const float* x, const float* dy, float* dx, int64_t n) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) {
    const float v = x[i];
    const float s = gelu_tanh_sigmoid(v);
    const float du2 = 2.0f * kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * v * v);
    dx[i] = dy[i] * (s + v * s * (1.0f - s) * du2);
  }
}

__global__ void dropout_kernel(const float* x, float* y, int64_t n, float p, float keep_scale, uint64_t base,
                               uint64_t offset) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) {
    const bool keep = counter_rng_uniform(base, offset + static_cast<uint64_t>(i)) >= p;
    y[i] = keep ? x[i] * keep_scale : 0.0f;
  }
}

__global__ void bias_add_kernel(float* y, const float* b, int64_t n, int64_t channels, int64_t inner) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) y[i] += b[(i / inner) % channels];
}

// One block per channel (block-stride over channels). Each thread sums its strided share
// of the channel's outer*inner elements in double, then the block adds the per-thread sums
// with block_sum's fixed tree: the order depends only on the shape. The total is added to
// the existing db[c] in double, rounded once (the CPU starts its double sum at db[c]).
__global__ void bias_grad_kernel(const float* dy, float* db, int64_t outer, int64_t channels, int64_t inner) {
  const int64_t per_channel = outer * inner;
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    double acc = 0.0;
    for (int64_t e = threadIdx.x; e < per_channel; e += blockDim.x) {
      const int64_t o = e / inner, i = e - o * inner;
      acc += dy[(o * channels + c) * inner + i];
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) db[c] = static_cast<float>(static_cast<double>(db[c]) + acc);
  }
}

// y [b, a, inner] from x [a, b, inner], one thread per element of y (coalesced writes;
// reads are coalesced along inner).
__global__ void swap_outer_axes_kernel(const float* x, float* y, int64_t a, int64_t b, int64_t inner, int64_t n) {
  for (int64_t e = grid_thread_index(); e < n; e += grid_thread_count()) {
    const int64_t row = e / inner, k = e - row * inner;  // row = j * a + i in y
    const int64_t j = row / a, i = row - j * a;
    y[e] = x[(i * b + j) * inner + k];
  }
}

}  // namespace

cudaError_t fill_f32(float* x, int64_t n, float value, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  fill_kernel<float><<<grid_1d(n), kBlockSize, 0, stream>>>(x, n, value);
  return cudaGetLastError();
}

cudaError_t fill_i32(int32_t* x, int64_t n, int32_t value, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  fill_kernel<int32_t><<<grid_1d(n), kBlockSize, 0, stream>>>(x, n, value);
  return cudaGetLastError();
}

cudaError_t scale(float* x, int64_t n, float alpha, cudaStream_t stream) {
  // alpha == 0 writes exact zeros (clearing NaN/inf), as the CPU backend and BLAS beta = 0.
  if (alpha == 0.0f) return fill_f32(x, n, 0.0f, stream);
  if (n <= 0) return cudaSuccess;
  scale_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, n, alpha);
  return cudaGetLastError();
}

cudaError_t add(const float* a, const float* b, float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  add_kernel<float><<<grid_1d(n), kBlockSize, 0, stream>>>(a, b, y, n);
  return cudaGetLastError();
}

cudaError_t activation_forward(Activation act, const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  switch (act) {
    case Activation::kRelu:
      relu_forward_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, y, n);
      break;
    case Activation::kGelu:
      gelu_forward_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, y, n);
      break;
    case Activation::kGeluTanh:
      gelu_tanh_forward_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, y, n);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t activation_backward(Activation act, const float* x, const float* dy, float* dx, int64_t n,
                                cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  switch (act) {
    case Activation::kRelu:
      relu_backward_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, dy, dx, n);
      break;
    case Activation::kGelu:
      gelu_backward_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, dy, dx, n);
      break;
    case Activation::kGeluTanh:
      gelu_tanh_backward_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, dy, dx, n);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t dropout(const float* x, float* y, int64_t n, float p, DropoutKey key, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (p <= 0.0f) {
    if (x == y) return cudaSuccess;
    return cudaMemcpyAsync(y, x, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream);
  }
  if (p >= 1.0f) return fill_f32(y, n, 0.0f, stream);  // everything dropped; avoids 1 / 0
  const float keep_scale = 1.0f / (1.0f - p);             // rounded on the host, as the CPU does
  const uint64_t base = counter_rng_base(key.seed, key.stream);
  dropout_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, y, n, p, keep_scale, base, key.offset);
  return cudaGetLastError();
}

cudaError_t bias_add(float* y, const float* b, int64_t outer, int64_t channels, int64_t inner,
                     cudaStream_t stream) {
  if (outer <= 0 || channels <= 0 || inner <= 0) return cudaSuccess;
  const int64_t n = outer * channels * inner;
  bias_add_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(y, b, n, channels, inner);
  return cudaGetLastError();
}

cudaError_t bias_grad(const float* dy, float* db, int64_t outer, int64_t channels, int64_t inner,
                      cudaStream_t stream) {
  // Accumulates: with nothing to add (outer * inner == 0), db keeps its values, as on the CPU.
  if (channels <= 0 || outer <= 0 || inner <= 0) return cudaSuccess;
  bias_grad_kernel<<<grid_1d(channels, 1), kBlockSize, 0, stream>>>(dy, db, outer, channels, inner);
  return cudaGetLastError();
}

cudaError_t swap_outer_axes(const float* x, float* y, int64_t a, int64_t b, int64_t inner, cudaStream_t stream) {
  if (a <= 0 || b <= 0 || inner <= 0) return cudaSuccess;
  const int64_t n = a * b * inner;
  swap_outer_axes_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, y, a, b, inner, n);
  return cudaGetLastError();
}

}  // namespace shardtrain::kernels

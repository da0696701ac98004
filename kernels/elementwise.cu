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
//
// Mixed precision: every kernel that touches activations is a template over their element
// type (float or __nv_bfloat16; load_f32 / store_f32 in kernel_util.cuh), and each
// launcher is one template body called by its fp32 and its bf16 entry point. The bf16
// instantiation evaluates the same fp32 expression on the widened inputs and rounds once
// on the store; the fp32 one is the code as it always was, bit for bit. bias_grad's bf16
// variant widens the bf16 gradients into the fp32 master gradient's double sum. The loads
// are scalar (2 bytes per bf16 thread): the pointers are arbitrary tensor views, and a
// vectorized path would need an alignment split that no test machine here can exercise.
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

// The activations are one kernel each way, over a functor of the fp32 value(s): y = f(x)
// forward, dx = f(x, dy) backward. No __restrict__: the op may run in place.
template <typename T, typename F>
__global__ void map_kernel(const T* x, T* y, int64_t n, F f) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) store_f32(y + i, f(load_f32(x + i)));
}
template <typename T, typename F>
__global__ void map2_kernel(const T* x, const T* dy, T* dx, int64_t n, F f) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count())
    store_f32(dx + i, f(load_f32(x + i), load_f32(dy + i)));
}

struct ReluForward {
  __device__ float operator()(float v) const { return v > 0.0f ? v : 0.0f; }
};

// Exact GELU, x * Phi(x).
struct GeluForward {
  __device__ float operator()(float v) const { return 0.5f * v * (1.0f + erff(v * kInvSqrt2)); }
};

// sigmoid(2u) = (1 + tanh(u)) / 2 for GPT-2's GELU, u = sqrt(2/pi) (x + 0.044715 x^3):
// the form the CPU backend computes, in its order.
__device__ __forceinline__ float gelu_tanh_sigmoid(float v) {
  const float u = kSqrt2OverPi * (v + kGeluCubic * v * v * v);
  return 1.0f / (1.0f + expf(-2.0f * u));
}

// GPT-2's GELU, 0.5 x (1 + tanh(u)) = x sigmoid(2u).
struct GeluTanhForward {
  __device__ float operator()(float v) const { return v * gelu_tanh_sigmoid(v); }
};

// Subgradient 0 at x == 0, as PyTorch.
struct ReluBackward {
  __device__ float operator()(float v, float g) const { return v > 0.0f ? g : 0.0f; }
};

// d/dx [x Phi(x)] = Phi(x) + x phi(x).
struct GeluBackward {
  __device__ float operator()(float v, float g) const {
    const float cdf = 0.5f * (1.0f + erff(v * kInvSqrt2));
    const float pdf = kInvSqrt2Pi * expf(-0.5f * v * v);
    return g * (cdf + v * pdf);
  }
};

// d/dx [x s(2u)] = s + x s (1 - s) 2u', s = sigmoid(2u), in the CPU's order.
struct GeluTanhBackward {
  __device__ float operator()(float v, float g) const {
    const float s = gelu_tanh_sigmoid(v);
    const float du2 = 2.0f * kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * v * v);
    return g * (s + v * s * (1.0f - s) * du2);
  }
};

template <typename T>
__global__ void dropout_kernel(const T* x, T* y, int64_t n, float p, float keep_scale, uint64_t base,
                               uint64_t offset) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) {
    const bool keep = counter_rng_uniform(base, offset + static_cast<uint64_t>(i)) >= p;
    store_f32(y + i, keep ? load_f32(x + i) * keep_scale : 0.0f);
  }
}

template <typename T>
__global__ void bias_add_kernel(T* y, const T* b, int64_t n, int64_t channels, int64_t inner) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count())
    store_f32(y + i, load_f32(y + i) + load_f32(b + (i / inner) % channels));
}

// One block per channel (block-stride over channels). Each thread sums its strided share
// of the channel's outer*inner elements in double, then the block adds the per-thread sums
// with block_sum's fixed tree: the order depends only on the shape. The total is added to
// the existing db[c] in double, rounded once (the CPU starts its double sum at db[c]).
template <typename T>
__global__ void bias_grad_kernel(const T* dy, float* db, int64_t outer, int64_t channels, int64_t inner) {
  const int64_t per_channel = outer * inner;
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    double acc = 0.0;
    for (int64_t e = threadIdx.x; e < per_channel; e += blockDim.x) {
      const int64_t o = e / inner, i = e - o * inner;
      acc += load_f32(dy + (o * channels + c) * inner + i);
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

// dst = src, through fp32: exact widening from bf16, one rounding to nearest-even to bf16.
template <typename S, typename D>
__global__ void convert_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) store_f32(dst + i, load_f32(src + i));
}

// Launcher bodies shared by the fp32 and bf16 entry points below (T: float or
// __nv_bfloat16).
template <typename T>
cudaError_t add_impl(const T* a, const T* b, T* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  add_kernel<T><<<grid_1d(n), kBlockSize, 0, stream>>>(a, b, y, n);
  return cudaGetLastError();
}

template <typename T>
cudaError_t activation_forward_impl(Activation act, const T* x, T* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  switch (act) {
    case Activation::kRelu:
      map_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, y, n, ReluForward{});
      break;
    case Activation::kGelu:
      map_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, y, n, GeluForward{});
      break;
    case Activation::kGeluTanh:
      map_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, y, n, GeluTanhForward{});
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t activation_backward_impl(Activation act, const T* x, const T* dy, T* dx, int64_t n,
                                     cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  switch (act) {
    case Activation::kRelu:
      map2_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, dy, dx, n, ReluBackward{});
      break;
    case Activation::kGelu:
      map2_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, dy, dx, n, GeluBackward{});
      break;
    case Activation::kGeluTanh:
      map2_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, dy, dx, n, GeluTanhBackward{});
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t dropout_impl(const T* x, T* y, int64_t n, float p, DropoutKey key, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const size_t bytes = static_cast<size_t>(n) * sizeof(T);
  if (p <= 0.0f) {
    if (x == y) return cudaSuccess;
    return cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice, stream);
  }
  if (p >= 1.0f) return cudaMemsetAsync(y, 0, bytes, stream);  // all dropped (+0.0 bits); avoids 1 / 0
  const float keep_scale = 1.0f / (1.0f - p);                   // rounded on the host, as the CPU does
  const uint64_t base = counter_rng_base(key.seed, key.stream);
  dropout_kernel<T><<<grid_1d(n), kBlockSize, 0, stream>>>(x, y, n, p, keep_scale, base, key.offset);
  return cudaGetLastError();
}

template <typename T>
cudaError_t bias_add_impl(T* y, const T* b, int64_t outer, int64_t channels, int64_t inner, cudaStream_t stream) {
  if (outer <= 0 || channels <= 0 || inner <= 0) return cudaSuccess;
  const int64_t n = outer * channels * inner;
  bias_add_kernel<T><<<grid_1d(n), kBlockSize, 0, stream>>>(y, b, n, channels, inner);
  return cudaGetLastError();
}

template <typename T>
cudaError_t bias_grad_impl(const T* dy, float* db, int64_t outer, int64_t channels, int64_t inner,
                           cudaStream_t stream) {
  // Accumulates: with nothing to add (outer * inner == 0), db keeps its values, as on the CPU.
  if (channels <= 0 || outer <= 0 || inner <= 0) return cudaSuccess;
  bias_grad_kernel<T><<<grid_1d(channels, 1), kBlockSize, 0, stream>>>(dy, db, outer, channels, inner);
  return cudaGetLastError();
}

template <typename S, typename D>
cudaError_t convert_impl(const S* src, D* dst, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  convert_kernel<S, D><<<grid_1d(n), kBlockSize, 0, stream>>>(src, dst, n);
  return cudaGetLastError();
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
  return add_impl(a, b, y, n, stream);
}

cudaError_t activation_forward(Activation act, const float* x, float* y, int64_t n, cudaStream_t stream) {
  return activation_forward_impl(act, x, y, n, stream);
}

cudaError_t activation_backward(Activation act, const float* x, const float* dy, float* dx, int64_t n,
                                cudaStream_t stream) {
  return activation_backward_impl(act, x, dy, dx, n, stream);
}

cudaError_t dropout(const float* x, float* y, int64_t n, float p, DropoutKey key, cudaStream_t stream) {
  return dropout_impl(x, y, n, p, key, stream);
}

cudaError_t bias_add(float* y, const float* b, int64_t outer, int64_t channels, int64_t inner,
                     cudaStream_t stream) {
  return bias_add_impl(y, b, outer, channels, inner, stream);
}

cudaError_t bias_grad(const float* dy, float* db, int64_t outer, int64_t channels, int64_t inner,
                      cudaStream_t stream) {
  return bias_grad_impl(dy, db, outer, channels, inner, stream);
}

cudaError_t swap_outer_axes(const float* x, float* y, int64_t a, int64_t b, int64_t inner, cudaStream_t stream) {
  if (a <= 0 || b <= 0 || inner <= 0) return cudaSuccess;
  const int64_t n = a * b * inner;
  swap_outer_axes_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(x, y, a, b, inner, n);
  return cudaGetLastError();
}

// ---- bf16

cudaError_t add(const bf16* a, const bf16* b, bf16* y, int64_t n, cudaStream_t stream) {
  return add_impl(device_ptr(a), device_ptr(b), device_ptr(y), n, stream);
}

cudaError_t activation_forward(Activation act, const bf16* x, bf16* y, int64_t n, cudaStream_t stream) {
  return activation_forward_impl(act, device_ptr(x), device_ptr(y), n, stream);
}

cudaError_t activation_backward(Activation act, const bf16* x, const bf16* dy, bf16* dx, int64_t n,
                                cudaStream_t stream) {
  return activation_backward_impl(act, device_ptr(x), device_ptr(dy), device_ptr(dx), n, stream);
}

cudaError_t dropout(const bf16* x, bf16* y, int64_t n, float p, DropoutKey key, cudaStream_t stream) {
  return dropout_impl(device_ptr(x), device_ptr(y), n, p, key, stream);
}

cudaError_t bias_add(bf16* y, const bf16* b, int64_t outer, int64_t channels, int64_t inner, cudaStream_t stream) {
  return bias_add_impl(device_ptr(y), device_ptr(b), outer, channels, inner, stream);
}

cudaError_t bias_grad(const bf16* dy, float* db, int64_t outer, int64_t channels, int64_t inner,
                      cudaStream_t stream) {
  return bias_grad_impl(device_ptr(dy), db, outer, channels, inner, stream);
}

cudaError_t convert(const float* src, bf16* dst, int64_t n, cudaStream_t stream) {
  return convert_impl(src, device_ptr(dst), n, stream);
}

cudaError_t convert(const bf16* src, float* dst, int64_t n, cudaStream_t stream) {
  return convert_impl(device_ptr(src), dst, n, stream);
}

}  // namespace shardtrain::kernels

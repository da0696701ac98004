// LayerNorm forward and backward, and the residual add fused into the forward.
//
// A row (C = 768 for GPT-2 small, up to a few thousand) is short enough for one warp:
// lanes stride over the columns, the sums go through register shuffles, and eight rows
// share a block with no shared memory and no barriers (llm.c's layernorm_forward3). The
// statistics follow the CPU backend exactly: the mean and then the centred sum of squares
// in double, two passes over the row (the second pass hits L1/L2, the row was just read),
// and every fp32 expression in the CPU's order, with the library's --fmad=false keeping
// its roundings. The double sums add in a butterfly instead of left to right, which moves
// the result by ~1e-16 relative, so mean and rstd almost always round to the CPU's bits.
//
// The backward has two kinds of output. dx is per row: a warp per row again, with the
// two row sums (of g = dy * w and of g * xhat) in double. dweight and dbias are sums over
// all rows per column, which must not use float atomics (they would make the order, and
// the bits, depend on scheduling). So they are two passes with a fixed shape: pass one
// gives each block a 256-column slice of a fixed 64-row chunk, one thread per column
// summing its chunk's rows in row order in double, coalesced across the slice, into a
// [chunks, C] scratch; pass two gives each column one thread that adds the chunk sums in
// chunk order and then adds that to the gradient. The chunk is a constant, not a
// function of the GPU, so the bits are the same on every device. This reads dy and x one
// more time than llm.c's fused kernel does (which uses shared-memory atomics), ~50 MB at
// GPT-2 small's 8192 x 768 rows: a few microseconds, paid for reproducibility. (The
// parameter pass runs before the dx pass here, but Backend::layernorm_backward does not
// allow dx to alias dy: the CPU reference computes dx first.)
//
// Mixed precision: the kernels are templates over the element type of x, weight, bias, y,
// dy and dx (float or __nv_bfloat16), read through load_f32 and written through
// store_f32, so the bf16 variant does the fp32 variant's arithmetic on the widened values
// and rounds y and dx once. mean, rstd, the double partial sums and dweight / dbias (the
// fp32 master gradients) are the same in both.
#include "kernels/norm.h"

#include <algorithm>
#include <cmath>

#include "kernels/kernel_util.cuh"

namespace shardtrain::kernels {

namespace {

constexpr int64_t kRowsPerChunk = 64;  // rows per partial sum of dweight / dbias: a constant

int64_t chunk_count(int64_t rows) { return (rows + kRowsPerChunk - 1) / kRowsPerChunk; }

// One row once s, the warp's double sum of the row's x, is known: the mean, the centred
// sum of squares (a second pass over x), y, and the statistics. The plain and the fused
// forward both end here, so they compute the same bits from the same x.
template <typename T>
__device__ __forceinline__ void layernorm_forward_row(const T* xr, double s, const T* __restrict__ w,
                                                      const T* __restrict__ b, float eps, int64_t c, int lane,
                                                      T* __restrict__ yr, float* mean_r, float* rstd_r) {
  const float m = static_cast<float>(s / c);
  double v = 0.0;
  for (int64_t i = lane; i < c; i += kWarpSize) {
    const float d = load_f32(xr + i) - m;
    v += static_cast<double>(d) * d;
  }
  v = warp_sum(v);
  const float rs = static_cast<float>(1.0 / sqrt(v / c + eps));
  for (int64_t i = lane; i < c; i += kWarpSize)
    store_f32(yr + i, (load_f32(xr + i) - m) * rs * load_f32(w + i) + load_f32(b + i));
  if (lane == 0) {
    *mean_r = m;
    *rstd_r = rs;
  }
}

template <typename T>
__global__ void layernorm_forward_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                         const T* __restrict__ b, float eps, int64_t rows, int64_t c,
                                         T* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd) {
  const int lane = threadIdx.x % kWarpSize;
  for (int64_t r = global_warp(); r < rows; r += warp_count()) {
    const T* xr = x + r * c;
    double s = 0.0;
    for (int64_t i = lane; i < c; i += kWarpSize) s += load_f32(xr + i);
    s = warp_sum(s);
    layernorm_forward_row(xr, s, w, b, eps, c, lane, y + r * c, mean + r, rstd + r);
  }
}

// The residual add fused in front (llm.c's fused_residual_forward): the first pass reads a
// and b, writes sum = a + b (as the add kernel: fp32 add, one rounding to T) and sums what
// it stored, then the row continues as layernorm_forward over sum. The later passes read
// sum back from L1/L2 (each lane its own elements, just written), so a and b cross DRAM
// once and the unfused add's write-then-read of sum becomes one write. No __restrict__ on
// a, b or sum: sum may alias a or b (each element is read, then written, by one lane), and
// sum is read after being written, so it must not go through the read-only cache.
template <typename T>
__global__ void add_layernorm_forward_kernel(const T* a, const T* b, const T* __restrict__ w,
                                             const T* __restrict__ bias, float eps, int64_t rows, int64_t c, T* sum,
                                             T* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd) {
  const int lane = threadIdx.x % kWarpSize;
  for (int64_t r = global_warp(); r < rows; r += warp_count()) {
    const T *ar = a + r * c, *br = b + r * c;
    T* sr = sum + r * c;
    double s = 0.0;
    for (int64_t i = lane; i < c; i += kWarpSize) {
      store_f32(sr + i, load_f32(ar + i) + load_f32(br + i));
      s += load_f32(sr + i);  // the stored value (bf16: rounded), as layernorm_forward would read it
    }
    s = warp_sum(s);
    layernorm_forward_row<T>(sr, s, w, bias, eps, c, lane, y + r * c, mean + r, rstd + r);
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w, a warp per row.
// No __restrict__ on dy / dx: they may alias (each element is read before it is written,
// by the same lane).
template <typename T>
__global__ void layernorm_backward_dx_kernel(const T* dy, const T* __restrict__ x, const T* __restrict__ w,
                                             const float* __restrict__ mean, const float* __restrict__ rstd,
                                             int64_t rows, int64_t c, T* dx) {
  const int lane = threadIdx.x % kWarpSize;
  for (int64_t r = global_warp(); r < rows; r += warp_count()) {
    const T *dyr = dy + r * c, *xr = x + r * c;
    const float m = mean[r], rs = rstd[r];
    double sg = 0.0, sgx = 0.0;
    for (int64_t i = lane; i < c; i += kWarpSize) {
      const float g = load_f32(dyr + i) * load_f32(w + i);
      sg += g;
      sgx += static_cast<double>(g) * ((load_f32(xr + i) - m) * rs);
    }
    sg = warp_sum(sg);
    sgx = warp_sum(sgx);
    const float mg = static_cast<float>(sg / c), mgx = static_cast<float>(sgx / c);
    T* dxr = dx + r * c;
    for (int64_t i = lane; i < c; i += kWarpSize)
      store_f32(dxr + i, rs * (load_f32(dyr + i) * load_f32(w + i) - mg - (load_f32(xr + i) - m) * rs * mgx));
  }
}

// Pass one: partial_w / partial_b [chunks, c] = sums of dy * xhat and dy over each chunk's
// rows, in row order. blockIdx.x: a kBlockSize-column slice; blockIdx.y: chunks (stride).
template <typename T>
__global__ void layernorm_param_partials_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                                const float* __restrict__ mean, const float* __restrict__ rstd,
                                                int64_t rows, int64_t c, double* __restrict__ partial_w,
                                                double* __restrict__ partial_b) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kBlockSize + threadIdx.x;
  if (col >= c) return;  // no barriers below
  const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  for (int64_t ch = blockIdx.y; ch < chunks; ch += gridDim.y) {
    const int64_t end = rows - ch * kRowsPerChunk < kRowsPerChunk ? rows : (ch + 1) * kRowsPerChunk;
    double sw = 0.0, sb = 0.0;
    for (int64_t r = ch * kRowsPerChunk; r < end; ++r) {
      const float g = load_f32(dy + r * c + col);
      sw += static_cast<double>(g) * ((load_f32(x + r * c + col) - mean[r]) * rstd[r]);
      sb += g;
    }
    partial_w[ch * c + col] = sw;
    partial_b[ch * c + col] = sb;
  }
}

// Pass two: dweight[col] += sum of the chunk sums in chunk order (likewise dbias).
__global__ void layernorm_param_finish_kernel(const double* __restrict__ partial_w,
                                              const double* __restrict__ partial_b, int64_t chunks, int64_t c,
                                              float* __restrict__ dweight, float* __restrict__ dbias) {
  for (int64_t col = grid_thread_index(); col < c; col += grid_thread_count()) {
    double sw = 0.0, sb = 0.0;
    for (int64_t ch = 0; ch < chunks; ++ch) {
      sw += partial_w[ch * c + col];
      sb += partial_b[ch * c + col];
    }
    dweight[col] = static_cast<float>(static_cast<double>(dweight[col]) + sw);
    dbias[col] = static_cast<float>(static_cast<double>(dbias[col]) + sb);
  }
}

unsigned int warp_grid(int64_t rows) { return grid_1d(rows, kBlockSize / kWarpSize); }

template <typename T>
cudaError_t layernorm_forward_impl(const T* x, const T* weight, const T* bias, float eps, int64_t rows,
                                   int64_t channels, T* y, float* mean, float* rstd, cudaStream_t stream) {
  if (rows <= 0 || channels <= 0) return cudaSuccess;
  layernorm_forward_kernel<T>
      <<<warp_grid(rows), kBlockSize, 0, stream>>>(x, weight, bias, eps, rows, channels, y, mean, rstd);
  return cudaGetLastError();
}

template <typename T>
cudaError_t add_layernorm_forward_impl(const T* a, const T* b, const T* weight, const T* bias, float eps, int64_t rows,
                                       int64_t channels, T* sum, T* y, float* mean, float* rstd, cudaStream_t stream) {
  if (rows <= 0 || channels <= 0) return cudaSuccess;
  add_layernorm_forward_kernel<T><<<warp_grid(rows), kBlockSize, 0, stream>>>(a, b, weight, bias, eps, rows, channels,
                                                                              sum, y, mean, rstd);
  return cudaGetLastError();
}

template <typename T>
cudaError_t layernorm_backward_impl(const T* dy, const T* x, const T* weight, const float* mean, const float* rstd,
                                    int64_t rows, int64_t channels, void* workspace, T* dx, float* dweight,
                                    float* dbias, cudaStream_t stream) {
  if (rows <= 0 || channels <= 0) return cudaSuccess;  // nothing to add, no dx rows
  const int64_t chunks = chunk_count(rows);
  double* partial_w = static_cast<double*>(workspace);
  double* partial_b = partial_w + chunks * channels;
  const dim3 grid(static_cast<unsigned int>((channels + kBlockSize - 1) / kBlockSize),
                  static_cast<unsigned int>(std::min<int64_t>(chunks, 65535)));
  layernorm_param_partials_kernel<T>
      <<<grid, kBlockSize, 0, stream>>>(dy, x, mean, rstd, rows, channels, partial_w, partial_b);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  layernorm_param_finish_kernel<<<grid_1d(channels), kBlockSize, 0, stream>>>(partial_w, partial_b, chunks,
                                                                               channels, dweight, dbias);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  layernorm_backward_dx_kernel<T>
      <<<warp_grid(rows), kBlockSize, 0, stream>>>(dy, x, weight, mean, rstd, rows, channels, dx);
  return cudaGetLastError();
}

}  // namespace

size_t layernorm_backward_workspace_bytes(int64_t rows, int64_t channels) {
  if (rows <= 0 || channels <= 0) return 0;
  return 2 * static_cast<size_t>(chunk_count(rows)) * static_cast<size_t>(channels) * sizeof(double);
}

cudaError_t layernorm_forward(const float* x, const float* weight, const float* bias, float eps, int64_t rows,
                              int64_t channels, float* y, float* mean, float* rstd, cudaStream_t stream) {
  return layernorm_forward_impl(x, weight, bias, eps, rows, channels, y, mean, rstd, stream);
}

cudaError_t add_layernorm_forward(const float* a, const float* b, const float* weight, const float* bias, float eps,
                                  int64_t rows, int64_t channels, float* sum, float* y, float* mean, float* rstd,
                                  cudaStream_t stream) {
  return add_layernorm_forward_impl(a, b, weight, bias, eps, rows, channels, sum, y, mean, rstd, stream);
}

cudaError_t layernorm_backward(const float* dy, const float* x, const float* weight, const float* mean,
                               const float* rstd, int64_t rows, int64_t channels, void* workspace, float* dx,
                               float* dweight, float* dbias, cudaStream_t stream) {
  return layernorm_backward_impl(dy, x, weight, mean, rstd, rows, channels, workspace, dx, dweight, dbias, stream);
}

cudaError_t layernorm_forward(const bf16* x, const bf16* weight, const bf16* bias, float eps, int64_t rows,
                              int64_t channels, bf16* y, float* mean, float* rstd, cudaStream_t stream) {
  return layernorm_forward_impl(device_ptr(x), device_ptr(weight), device_ptr(bias), eps, rows, channels,
                                device_ptr(y), mean, rstd, stream);
}

cudaError_t add_layernorm_forward(const bf16* a, const bf16* b, const bf16* weight, const bf16* bias, float eps,
                                  int64_t rows, int64_t channels, bf16* sum, bf16* y, float* mean, float* rstd,
                                  cudaStream_t stream) {
  return add_layernorm_forward_impl(device_ptr(a), device_ptr(b), device_ptr(weight), device_ptr(bias), eps, rows,
                                    channels, device_ptr(sum), device_ptr(y), mean, rstd, stream);
}

cudaError_t layernorm_backward(const bf16* dy, const bf16* x, const bf16* weight, const float* mean,
                               const float* rstd, int64_t rows, int64_t channels, void* workspace, bf16* dx,
                               float* dweight, float* dbias, cudaStream_t stream) {
  return layernorm_backward_impl(device_ptr(dy), device_ptr(x), device_ptr(weight), mean, rstd, rows, channels,
                                 workspace, device_ptr(dx), dweight, dbias, stream);
}

}  // namespace shardtrain::kernels

// Softmax cross-entropy and accuracy counting.
//
// Rows are independent, and their length decides the layout. A classifier over tens to a
// thousand classes gets one warp per row: lanes stride over the columns and combine with
// register shuffles, eight rows per block, no shared memory and no barriers. A language
// model's vocabulary (c = 50257 over a row of ld = 50304) gets a whole block per row, as
// llm.c's fused classifier does, so that a batch of a few thousand rows still spreads over
// the GPU and each row is read by 256 threads at once. One template serves both
// (RowGroup<threads per row>); the tree shapes depend only on the row length, so either
// way the result is deterministic.
//
// Forward reads each row once (the logits of a vocabulary are the largest tensor of the
// step): each thread keeps an online softmax over its columns, the max m it has seen and
// s = sum exp(z - m) in double, rescaled by exp(m_old - m_new) when m grows; the group then
// takes the row max M and sums s * exp(m - M) through a fixed tree. The exponentials of the
// logits are expf, as the CPU's are float exp, and every sum and rescale is in double, so
// the result differs from the CPU's (which exponentiates against M directly) by a few
// float roundings of each term, not by the order of thousands of additions. The row max
// itself is exact. The backward is one fused elementwise pass per row: it recomputes the
// softmax from the logits and the forward's (max, 1/sum), subtracts the one-hot label,
// scales and zeroes the padding, in the CPU's operation order (the library compiles with
// --fmad=false); each element is read and written by the same thread, so it may run in
// place over the logits.
//
// count_correct keeps a warp per row even for a vocabulary: it runs on evaluation
// batches, whose thousands of rows fill the GPU with warps. The argmax combine keeps the
// lowest index among equal maxima, which is what the CPU's strict left-to-right scan
// returns. Correct rows are counted per warp and added to the device counter with one
// integer atomic per warp: integer sums do not depend on order.
//
// Mixed precision: the kernels are templates over the element type of the logits (float
// or __nv_bfloat16). With bf16 logits everything after the load is the fp32 code: stats
// and losses are fp32, and dlogits is rounded to bf16 once on the store.
#include "kernels/loss.h"

#include <cmath>

#include "kernels/kernel_util.cuh"

namespace shardtrain::kernels {

namespace {

// Rows longer than this get a block each; shorter ones a warp.
constexpr int64_t kBlockPerRowAbove = 1024;

// kThreads threads share each row: a warp, or the whole kBlockSize-thread block. Rows are
// walked with a grid-stride loop; for the block case every thread of a block walks the
// same rows, so the barriers inside allreduce are reached uniformly.
template <int kThreads>
struct RowGroup {
  static_assert(kThreads == kWarpSize || kThreads == kBlockSize, "a warp or a block per row");
  static constexpr int kRowsPerBlock = kBlockSize / kThreads;
  __device__ static int lane() { return threadIdx.x % kThreads; }
  __device__ static int64_t first_row() {
    return static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kThreads;
  }
  __device__ static int64_t row_stride() { return static_cast<int64_t>(gridDim.x) * kRowsPerBlock; }
  template <typename V, typename Op>
  __device__ static V allreduce(V v, Op op, V identity) {
    if constexpr (kThreads == kWarpSize) {
      return warp_allreduce(v, op);
    } else {
      return block_allreduce(v, op, identity);
    }
  }
};

template <int kThreads, typename T>
__global__ void softmax_xent_forward_kernel(const T* __restrict__ logits, int64_t ld,
                                            const int32_t* __restrict__ labels, int64_t n, int64_t c,
                                            float* __restrict__ stats, float* __restrict__ losses) {
  using Group = RowGroup<kThreads>;
  for (int64_t row = Group::first_row(); row < n; row += Group::row_stride()) {
    const T* z = logits + row * ld;
    // Online softmax over this thread's columns. -inf is the identity of max; a NaN logit
    // never compares greater, and its expf makes the sum (and the loss) NaN, as on the CPU.
    float m = -INFINITY;
    double s = 0.0;
    for (int64_t j = Group::lane(); j < c; j += kThreads) {
      const float v = load_f32(z + j);
      if (v > m) {
        s = s * exp(static_cast<double>(m) - v) + 1.0;  // exp(-inf) = 0 on the first column
        m = v;
      } else {
        s += expf(v - m);
      }
    }
    const float mx = Group::allreduce(m, MaxOp{}, -INFINITY);
    // A thread without columns (c < kThreads) has s = 0 and adds nothing.
    const double denom = Group::allreduce(s == 0.0 ? 0.0 : s * exp(static_cast<double>(m) - mx), SumOp{}, 0.0);
    if (Group::lane() == 0) {
      stats[2 * row] = mx;
      stats[2 * row + 1] = static_cast<float>(1.0 / denom);
      // -log softmax via log-sum-exp: finite even when the label's probability underflows.
      // A label outside [0, c) would read out of bounds; it gets a NaN loss instead.
      const int32_t label = labels[row];
      losses[row] = label >= 0 && label < c
                        ? static_cast<float>(log(denom) - (static_cast<double>(load_f32(z + label)) - mx))
                        : NAN;
    }
  }
}

// No __restrict__: dlogits may alias logits.
template <int kThreads, typename T>
__global__ void softmax_xent_backward_kernel(const T* logits, int64_t ld, const float* __restrict__ stats,
                                             const int32_t* __restrict__ labels, int64_t n, int64_t c,
                                             float scale, T* dlogits) {
  using Group = RowGroup<kThreads>;
  for (int64_t row = Group::first_row(); row < n; row += Group::row_stride()) {
    const T* z = logits + row * ld;
    T* d = dlogits + row * ld;
    const float mx = stats[2 * row], inv = stats[2 * row + 1];
    const int32_t label = labels[row];
    for (int64_t j = Group::lane(); j < ld; j += kThreads) {
      float v = 0.0f;  // padding columns
      if (j < c) {
        v = expf(load_f32(z + j) - mx) * inv * scale;  // softmax * scale, then minus scale at
        if (j == label) v -= scale;                     // the label: the CPU's two roundings
      }
      store_f32(d + j, v);
    }
  }
}

// (value, index) of the first maximum: the larger value wins, equal values go to the lower
// index; index -1 means "no non-NaN value seen".
__device__ __forceinline__ bool argmax_better(float v, int64_t i, float best_v, int64_t best_i) {
  return best_i < 0 || (i >= 0 && (v > best_v || (v == best_v && i < best_i)));
}

template <typename T>
__global__ void count_correct_kernel(const T* __restrict__ logits, int64_t ld, const int32_t* __restrict__ labels,
                                     int64_t n, int64_t c, unsigned long long* count) {
  const int lane = threadIdx.x % kWarpSize;
  unsigned long long correct = 0;
  for (int64_t row = global_warp(); row < n; row += warp_count()) {
    const T* z = logits + row * ld;
    // The CPU scan `if (z[j] > z[best]) best = j` from best = 0 returns the first maximum
    // of the non-NaN values, or 0 when z[0] is NaN (nothing compares greater than NaN).
    float best_v = 0.0f;
    int64_t best_i = -1;
    for (int64_t j = lane; j < c; j += kWarpSize) {
      const float v = load_f32(z + j);
      if (v == v && (best_i < 0 || v > best_v)) {  // lane-local scan is in ascending j
        best_v = v;
        best_i = j;
      }
    }
    for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, best_v, offset);
      const int64_t oi = __shfl_xor_sync(0xffffffffu, best_i, offset);
      if (argmax_better(ov, oi, best_v, best_i)) {
        best_v = ov;
        best_i = oi;
      }
    }
    const float z0 = load_f32(z);
    if (best_i < 0 || z0 != z0) best_i = 0;
    if (lane == 0 && best_i == labels[row]) ++correct;
  }
  if (lane == 0 && correct > 0) atomicAdd(count, correct);
}

template <int kThreads>
unsigned int row_grid(int64_t rows) {
  return grid_1d(rows, RowGroup<kThreads>::kRowsPerBlock);
}

template <typename T>
cudaError_t softmax_xent_forward_impl(const T* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                                      float* stats, float* losses, cudaStream_t stream) {
  if (n <= 0 || c <= 0) return cudaSuccess;
  if (c > kBlockPerRowAbove) {
    softmax_xent_forward_kernel<kBlockSize, T>
        <<<row_grid<kBlockSize>(n), kBlockSize, 0, stream>>>(logits, ld, labels, n, c, stats, losses);
  } else {
    softmax_xent_forward_kernel<kWarpSize, T>
        <<<row_grid<kWarpSize>(n), kBlockSize, 0, stream>>>(logits, ld, labels, n, c, stats, losses);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t softmax_xent_backward_impl(const T* logits, int64_t ld, const float* stats, const int32_t* labels,
                                       int64_t n, int64_t c, float scale, T* dlogits, cudaStream_t stream) {
  if (n <= 0 || ld <= 0) return cudaSuccess;
  if (c > kBlockPerRowAbove) {
    softmax_xent_backward_kernel<kBlockSize, T>
        <<<row_grid<kBlockSize>(n), kBlockSize, 0, stream>>>(logits, ld, stats, labels, n, c, scale, dlogits);
  } else {
    softmax_xent_backward_kernel<kWarpSize, T>
        <<<row_grid<kWarpSize>(n), kBlockSize, 0, stream>>>(logits, ld, stats, labels, n, c, scale, dlogits);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t count_correct_impl(const T* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                               unsigned long long* count, cudaStream_t stream) {
  // The count is overwritten, so it is zeroed even when there are no rows to count.
  const cudaError_t err = cudaMemsetAsync(count, 0, sizeof(*count), stream);
  if (err != cudaSuccess || n <= 0 || c <= 0) return err;
  count_correct_kernel<T><<<row_grid<kWarpSize>(n), kBlockSize, 0, stream>>>(logits, ld, labels, n, c, count);
  return cudaGetLastError();
}

}  // namespace

cudaError_t softmax_xent_forward(const float* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                                 float* stats, float* losses, cudaStream_t stream) {
  return softmax_xent_forward_impl(logits, ld, labels, n, c, stats, losses, stream);
}

cudaError_t softmax_xent_backward(const float* logits, int64_t ld, const float* stats, const int32_t* labels,
                                  int64_t n, int64_t c, float scale, float* dlogits, cudaStream_t stream) {
  return softmax_xent_backward_impl(logits, ld, stats, labels, n, c, scale, dlogits, stream);
}

cudaError_t count_correct(const float* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                          unsigned long long* count, cudaStream_t stream) {
  return count_correct_impl(logits, ld, labels, n, c, count, stream);
}

cudaError_t softmax_xent_forward(const bf16* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                                 float* stats, float* losses, cudaStream_t stream) {
  return softmax_xent_forward_impl(device_ptr(logits), ld, labels, n, c, stats, losses, stream);
}

cudaError_t softmax_xent_backward(const bf16* logits, int64_t ld, const float* stats, const int32_t* labels,
                                  int64_t n, int64_t c, float scale, bf16* dlogits, cudaStream_t stream) {
  return softmax_xent_backward_impl(device_ptr(logits), ld, stats, labels, n, c, scale, device_ptr(dlogits),
                                    stream);
}

cudaError_t count_correct(const bf16* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                          unsigned long long* count, cudaStream_t stream) {
  return count_correct_impl(device_ptr(logits), ld, labels, n, c, count, stream);
}

}  // namespace shardtrain::kernels

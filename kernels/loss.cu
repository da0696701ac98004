// Softmax cross-entropy and accuracy counting.
//
// Rows are short (tens to a few thousand classes) and independent, so one warp owns a row:
// the lanes stride over its columns and combine with register shuffles, with no shared
// memory and no block barriers, and eight rows share a block. The row max is the
// CPU's; the exponentials are CUDA's expf (within 2 ulp of glibc's, not bitwise equal); the denominator is summed in double like the
// CPU's, by a fixed butterfly rather than left to right, so it is deterministic and
// agrees with the CPU to double rounding, far below what the fp32 results can show. The
// argmax combine keeps the lowest index among equal maxima, which is what the CPU's
// strict left-to-right scan returns. Correct rows are counted per warp and added to the
// device counter with one integer atomic per warp: integer sums do not depend on order.
#include "kernels/loss.h"

#include <cmath>

#include "kernels/kernel_util.cuh"

namespace shardtrain::kernels {

namespace {

constexpr int kWarpsPerBlock = kBlockSize / kWarpSize;

__device__ __forceinline__ int64_t global_warp() { return grid_thread_index() / kWarpSize; }
__device__ __forceinline__ int64_t warp_count() { return grid_thread_count() / kWarpSize; }

// std::max's form, (a < b) ? b : a, so the same value wins as on the CPU.
__device__ __forceinline__ float warp_max(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
    const float o = __shfl_xor_sync(0xffffffffu, v, offset);
    v = v < o ? o : v;
  }
  return v;
}

__global__ void softmax_xent_forward_kernel(const float* __restrict__ logits, const int32_t* __restrict__ labels,
                                            int64_t n, int64_t c, float* __restrict__ probs,
                                            float* __restrict__ losses) {
  const int lane = threadIdx.x % kWarpSize;
  for (int64_t row = global_warp(); row < n; row += warp_count()) {
    const float* z = logits + row * c;
    float* p = probs + row * c;
    // Subtracting the max keeps expf from overflowing. -inf is the identity of max here;
    // any NaN in the row makes every output NaN below, as on the CPU.
    float mx = -INFINITY;
    for (int64_t j = lane; j < c; j += kWarpSize) mx = mx < z[j] ? z[j] : mx;
    mx = warp_max(mx);
    double denom = 0.0;
    for (int64_t j = lane; j < c; j += kWarpSize) {
      const float e = expf(z[j] - mx);
      p[j] = e;
      denom += e;
    }
    denom = warp_sum(denom);  // the same bits in every lane
    const float inv = static_cast<float>(1.0 / denom);
    for (int64_t j = lane; j < c; j += kWarpSize) p[j] *= inv;  // each lane rescales its own entries
    if (lane == 0) {
      // -log softmax via log-sum-exp: finite even when the label's probability underflows.
      // A label outside [0, c) would read out of bounds; it gets a NaN loss instead.
      const int32_t label = labels[row];
      losses[row] = label >= 0 && label < c
                        ? static_cast<float>(log(denom) - (static_cast<double>(z[label]) - mx))
                        : NAN;
    }
  }
}

// dlogits = probs * scale, then minus scale at the label: two roundings, as on the CPU.
__global__ void softmax_xent_backward_kernel(const float* __restrict__ probs, const int32_t* __restrict__ labels,
                                             int64_t total, int64_t c, float scale, float* __restrict__ dlogits) {
  for (int64_t e = grid_thread_index(); e < total; e += grid_thread_count()) {
    const int64_t row = e / c, j = e - row * c;
    float v = probs[e] * scale;
    if (j == labels[row]) v -= scale;
    dlogits[e] = v;
  }
}

// (value, index) of the first maximum: the larger value wins, equal values go to the lower
// index; index -1 means "no non-NaN value seen".
__device__ __forceinline__ bool argmax_better(float v, int64_t i, float best_v, int64_t best_i) {
  return best_i < 0 || (i >= 0 && (v > best_v || (v == best_v && i < best_i)));
}

__global__ void count_correct_kernel(const float* __restrict__ logits, const int32_t* __restrict__ labels,
                                     int64_t n, int64_t c, unsigned long long* count) {
  const int lane = threadIdx.x % kWarpSize;
  unsigned long long correct = 0;
  for (int64_t row = global_warp(); row < n; row += warp_count()) {
    const float* z = logits + row * c;
    // The CPU scan `if (z[j] > z[best]) best = j` from best = 0 returns the first maximum
    // of the non-NaN values, or 0 when z[0] is NaN (nothing compares greater than NaN).
    float best_v = 0.0f;
    int64_t best_i = -1;
    for (int64_t j = lane; j < c; j += kWarpSize) {
      const float v = z[j];
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
    if (best_i < 0 || z[0] != z[0]) best_i = 0;
    if (lane == 0 && best_i == labels[row]) ++correct;
  }
  if (lane == 0 && correct > 0) atomicAdd(count, correct);
}

unsigned int warp_grid(int64_t rows) { return grid_1d(rows, kWarpsPerBlock); }

}  // namespace

cudaError_t softmax_xent_forward(const float* logits, const int32_t* labels, int64_t n, int64_t c, float* probs,
                                 float* losses, cudaStream_t stream) {
  if (n <= 0 || c <= 0) return cudaSuccess;
  softmax_xent_forward_kernel<<<warp_grid(n), kBlockSize, 0, stream>>>(logits, labels, n, c, probs, losses);
  return cudaGetLastError();
}

cudaError_t softmax_xent_backward(const float* probs, const int32_t* labels, int64_t n, int64_t c, float scale,
                                  float* dlogits, cudaStream_t stream) {
  if (n <= 0 || c <= 0) return cudaSuccess;
  const int64_t total = n * c;
  softmax_xent_backward_kernel<<<grid_1d(total), kBlockSize, 0, stream>>>(probs, labels, total, c, scale,
                                                                          dlogits);
  return cudaGetLastError();
}

cudaError_t count_correct(const float* logits, const int32_t* labels, int64_t n, int64_t c,
                          unsigned long long* count, cudaStream_t stream) {
  // The count is overwritten, so it is zeroed even when there are no rows to count.
  const cudaError_t err = cudaMemsetAsync(count, 0, sizeof(*count), stream);
  if (err != cudaSuccess || n <= 0 || c <= 0) return err;
  count_correct_kernel<<<warp_grid(n), kBlockSize, 0, stream>>>(logits, labels, n, c, count);
  return cudaGetLastError();
}

}  // namespace shardtrain::kernels

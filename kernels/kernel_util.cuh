// Launch helpers shared by the kernel files (device code only; not part of any public
// header).
//
// Every kernel here walks its index range with a grid-stride loop. The grid is therefore a
// tuning choice and never a correctness one: any n works, a launch never exceeds
// gridDim.x's limit, and we can cap the grid at a few waves of the largest GPU instead of
// scheduling millions of blocks. Indices are int64_t because a flat parameter or gradient
// buffer of a large model passes 2^31 elements; kernels whose index math is mostly
// division (conv, pooling) are also instantiated with int32_t and take that path when
// every index provably fits, since 64-bit division is a long software sequence on the GPU.
// The reductions sum in double with a fixed-shape tree whose shape depends only on the
// block size, never on scheduling, so the same input always gives the same bits.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "core/bfloat16.h"

namespace shardtrain::kernels {

// Threads per block for every 1-D kernel; the block reductions below require exactly this.
constexpr int kBlockSize = 256;
constexpr int kWarpSize = 32;
// 8192 blocks x 256 threads = 2M threads: about 8 waves of a full H100, enough to hide
// latency; larger n loops.
constexpr int64_t kMaxGridBlocks = 8192;

// Blocks for `work` items at `per_block` items per block, at least 1, at most the cap.
inline unsigned int grid_1d(int64_t work, int64_t per_block = kBlockSize) {
  const int64_t blocks = (work + per_block - 1) / per_block;
  return static_cast<unsigned int>(std::min(std::max<int64_t>(blocks, 1), kMaxGridBlocks));
}

// True when indices up to `max_index` plus one full grid stride fit in int32_t, so a
// grid-stride loop in int32_t cannot overflow.
inline bool fits_int32(int64_t max_index) {
  return max_index <= INT32_MAX - kMaxGridBlocks * kBlockSize;
}

template <typename Index = int64_t>
__device__ __forceinline__ Index grid_thread_index() {
  return static_cast<Index>(blockIdx.x) * static_cast<Index>(blockDim.x) + static_cast<Index>(threadIdx.x);
}
template <typename Index = int64_t>
__device__ __forceinline__ Index grid_thread_count() {
  return static_cast<Index>(gridDim.x) * static_cast<Index>(blockDim.x);
}

// Reduction operators for the helpers below. Both are commutative bit for bit (a + b and
// b + a round the same; fmaxf is symmetric, NaN included), which is what lets every lane of
// a butterfly end with the same bits.
struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Butterfly reduction over a full warp: every lane ends with the same bits, since each
// step combines the same two values on both lanes of a pair.
template <typename T, typename Op>
__device__ __forceinline__ T warp_allreduce(T v, Op op) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

__device__ __forceinline__ double warp_sum(double v) { return warp_allreduce(v, SumOp{}); }

// Reduction of one value per thread of a kBlockSize-thread block, as a fixed tree: a
// butterfly within each warp, then the warp results in warp order through the same
// butterfly (every warp does this second step, so every thread gets the result). All
// threads of the block must call it; the trailing barrier makes it safe to call again
// (e.g. in a block-stride loop). `identity` fills the lanes past the last warp.
template <typename T, typename Op>
__device__ __forceinline__ T block_allreduce(T v, Op op, T identity) {
  static_assert(kBlockSize % kWarpSize == 0 && kBlockSize / kWarpSize <= kWarpSize, "block shape");
  constexpr int kWarps = kBlockSize / kWarpSize;
  __shared__ T warp_vals[kWarps];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  v = warp_allreduce(v, op);
  if (lane == 0) warp_vals[warp] = v;
  __syncthreads();
  v = warp_allreduce(lane < kWarps ? warp_vals[lane] : identity, op);
  __syncthreads();
  return v;
}

// Sum of one double per thread of a kBlockSize-thread block (block_allreduce's tree).
__device__ __forceinline__ double block_sum(double v) { return block_allreduce(v, SumOp{}, 0.0); }

// Global warp index and warp count of a grid-stride loop whose unit of work is a warp.
__device__ __forceinline__ int64_t global_warp() { return grid_thread_index() / kWarpSize; }
__device__ __forceinline__ int64_t warp_count() { return grid_thread_count() / kWarpSize; }

// Element type of activations: float, or __nv_bfloat16 for mixed precision. Kernels that
// touch activations are templates over it and go through these two overloads, so a bf16
// variant is an instantiation away. Arithmetic is always fp32 (or wider) in registers:
// a bf16 load widens exactly, a bf16 store rounds once to nearest-even. The float
// overloads are plain loads and stores, so the fp32 instantiations compile to what a
// kernel written on float would.
__device__ __forceinline__ float load_f32(const float* p) { return *p; }
__device__ __forceinline__ float load_f32(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store_f32(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_f32(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// The launchers take shardtrain::bf16 (core/bfloat16.h: plain C++, so headers shared with
// host code need no CUDA header) and hand the kernels CUDA's type, which has the same
// layout. device_ptr maps both element types of a launcher's pointers to the kernels'
// (float stays float), so one templated launcher body serves fp32 and bf16.
static_assert(sizeof(__nv_bfloat16) == sizeof(bf16) && alignof(__nv_bfloat16) == alignof(bf16),
              "bf16 and __nv_bfloat16 share a layout");
inline float* device_ptr(float* p) { return p; }
inline const float* device_ptr(const float* p) { return p; }
inline __nv_bfloat16* device_ptr(bf16* p) { return reinterpret_cast<__nv_bfloat16*>(p); }
inline const __nv_bfloat16* device_ptr(const bf16* p) { return reinterpret_cast<const __nv_bfloat16*>(p); }

}  // namespace shardtrain::kernels

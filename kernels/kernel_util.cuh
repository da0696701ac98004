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

#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

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

// Butterfly sum over a full warp: every lane ends with the same bits, since each step adds
// the same two values (a + b == b + a in IEEE arithmetic) on both lanes of a pair.
__device__ __forceinline__ double warp_sum(double v) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum of one double per thread of a kBlockSize-thread block, as a fixed tree: a butterfly
// within each warp, then the warp sums in warp order through the same butterfly. The
// result is valid in every thread of warp 0. All threads of the block must call it; the
// trailing barrier makes it safe to call again (e.g. in a block-stride loop).
__device__ __forceinline__ double block_sum(double v) {
  static_assert(kBlockSize % kWarpSize == 0 && kBlockSize / kWarpSize <= kWarpSize, "block shape");
  __shared__ double warp_sums[kBlockSize / kWarpSize];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  v = warp_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) v = warp_sum(lane < kBlockSize / kWarpSize ? warp_sums[lane] : 0.0);
  __syncthreads();
  return v;
}

}  // namespace shardtrain::kernels

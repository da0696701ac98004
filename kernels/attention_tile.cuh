// Tile machinery shared by the attention kernels (attention.cu, attention_backward.cu);
// device code only, not a public header. The why of the design is at the top of
// attention.cu.
//
// A block has kAttnThreads = 256 threads viewed as a 16 x 16 grid, thread (ty, tx) =
// (tid / 16, tid % 16). Every kTile x kTile matrix of a tile pair (scores, probabilities,
// their gradients) is spread the same way: thread (ty, tx) holds rows ty + 16a and columns
// tx + 16b, a, b < 4, in registers. Every kTile x D accumulator (out, dq, dk, dv) holds
// rows ty + 16a and head columns tx + 16c. A row of a score tile therefore lives in the 16
// lanes of one half-warp, so row maxima and sums are 4-step shuffle butterflies.
//
// Shared-memory tiles of q, k, v, dout are [kTile][kStride] elements of the activations'
// type S (float, or __nv_bfloat16 under mixed precision), zero-filled past the sequence end
// and past the head dim: the padded columns add exact zeros to every dot product, so the
// loops run over the compile-time kMaxD. The stride is chosen so that the 16 different
// rows a half-warp reads at one column fall in 16 different 4-byte banks: kMaxD + 1 floats
// (an odd number of words), or kMaxD + 2 bf16 values (kMaxD / 2 + 1 words, odd for every
// bucket). bf16 tiles hold the bf16 inputs exactly, so they give the same scores as fp32
// tiles of the same inputs would, in half the shared memory; every product and sum is
// fp32 in registers either way. Score-shaped tiles (probabilities, their gradients) are
// always fp32.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernel_util.cuh"

namespace shardtrain::kernels::attention_tile {

constexpr int kTile = 64;          // positions per query tile and per key tile
constexpr int kThreads = 256;      // a 16 x 16 thread grid
constexpr int kPerThread = kTile / 16;
constexpr int kPStride = kTile + 1;  // row stride of the [kTile][kTile] probability tile
static_assert(kThreads == 16 * 16, "thread grid");

// S: the element type of the head tiles (float or __nv_bfloat16).
template <int kMaxD, typename S = float>
struct Dims {
  static_assert(kMaxD % 16 == 0 && (kMaxD & (kMaxD - 1)) == 0, "head-dim bucket: a power of two >= 16");
  static_assert(sizeof(S) == 4 || sizeof(S) == 2, "head tiles: float or bf16");
  static constexpr int kStride = sizeof(S) == 4 ? kMaxD + 1 : kMaxD + 2;  // row stride of a head tile
  static_assert((kStride * sizeof(S) / 4) % 2 == 1, "odd row stride in 4-byte words: no bank conflicts");
  static constexpr int kTileElems = kTile * kStride;             // one head tile
  static constexpr size_t kTileBytes = kTileElems * sizeof(S);  // a multiple of 4: fp32 tiles may follow
  static constexpr int kCols = kMaxD / 16;                      // accumulator columns per thread
};

// Blocks launched over (sequence x head, tile) never exceed these.
inline bool attention_grid_fits(int64_t batch_heads, int64_t tiles) {
  return batch_heads <= INT32_MAX && tiles <= 65535;
}
inline int64_t tile_count(int64_t seq) { return (seq + kTile - 1) / kTile; }

// dst [kTile][kStride] = rows [row0, row0 + kTile) of a head's columns [0, kMaxD), row r of
// the source at src + r * ld, zero for rows >= rows_valid or columns >= cols_valid. The
// tile has the source's element type, so this is a copy (a bf16 widened to fp32 and
// rounded back is itself).
template <int kMaxD, typename T>
__device__ __forceinline__ void load_tile(const T* src, int64_t ld, int row0, int rows_valid, int cols_valid,
                                          T* dst) {
  for (int e = threadIdx.x; e < kTile * kMaxD; e += kThreads) {
    const int r = e / kMaxD, d = e % kMaxD;  // consecutive threads: consecutive columns
    const int row = row0 + r;
    store_f32(dst + r * Dims<kMaxD, T>::kStride + d,
              row < rows_valid && d < cols_valid ? load_f32(src + static_cast<int64_t>(row) * ld + d) : 0.0f);
  }
}

// acc[a][b] += sum over d < kMaxD of A[ty + 16a][d] * B[tx + 16b][d]: this thread's part of
// A B^T for two head tiles. Explicit FMAs (the library's --fmad=false only stops the
// compiler from contracting on its own).
template <int kMaxD, typename S>
__device__ __forceinline__ void tile_dot(const S* A, const S* B, int ty, int tx,
                                         float (&acc)[kPerThread][kPerThread]) {
  constexpr int kS = Dims<kMaxD, S>::kStride;
#pragma unroll 8
  for (int d = 0; d < kMaxD; ++d) {
    float av[kPerThread], bv[kPerThread];
#pragma unroll
    for (int a = 0; a < kPerThread; ++a) av[a] = load_f32(A + (ty + 16 * a) * kS + d);
#pragma unroll
    for (int b = 0; b < kPerThread; ++b) bv[b] = load_f32(B + (tx + 16 * b) * kS + d);
#pragma unroll
    for (int a = 0; a < kPerThread; ++a)
#pragma unroll
      for (int b = 0; b < kPerThread; ++b) acc[a][b] = fmaf(av[a], bv[b], acc[a][b]);
  }
}

// acc[a][c] += sum over r < kTile of P[r][row_a] * M[r][tx + 16c] when `transposed`
// (P^T M, rows of the result are columns of P), else of P[row_a][r] * M[r][tx + 16c]
// (P M); row_a = ty + 16a. P is a [kTile][kPStride] tile, M a head tile.
template <int kMaxD, bool kTransposed, typename S>
__device__ __forceinline__ void tile_accumulate(const float* P, const S* M, int ty, int tx,
                                                float (&acc)[kPerThread][Dims<kMaxD>::kCols]) {
  constexpr int kS = Dims<kMaxD, S>::kStride, kCols = Dims<kMaxD>::kCols;
#pragma unroll 4
  for (int r = 0; r < kTile; ++r) {
    float pv[kPerThread];
#pragma unroll
    for (int a = 0; a < kPerThread; ++a)
      pv[a] = kTransposed ? P[r * kPStride + ty + 16 * a] : P[(ty + 16 * a) * kPStride + r];
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      const float mv = load_f32(M + r * kS + tx + 16 * c);
#pragma unroll
      for (int a = 0; a < kPerThread; ++a) acc[a][c] = fmaf(pv[a], mv, acc[a][c]);
    }
  }
}

// Stores this thread's [kPerThread][kPerThread] part of a score-shaped tile.
__device__ __forceinline__ void store_score_tile(const float (&v)[kPerThread][kPerThread], int ty, int tx,
                                                 float* P) {
#pragma unroll
  for (int a = 0; a < kPerThread; ++a)
#pragma unroll
    for (int b = 0; b < kPerThread; ++b) P[(ty + 16 * a) * kPStride + tx + 16 * b] = v[a][b];
}

// Reduction over the 16 lanes of a half-warp (one score row); every lane gets the result.
template <typename Op>
__device__ __forceinline__ float row_allreduce(float v, Op op) {
#pragma unroll
  for (int offset = 8; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Writes this thread's rows ty + 16a (sequence positions row0 + ty + 16a < rows_valid) and
// head columns tx + 16c < cols_valid of acc * scale to dst + row * ld.
template <int kMaxD, typename T>
__device__ __forceinline__ void store_rows(const float (&acc)[kPerThread][Dims<kMaxD>::kCols], float scale,
                                           int ty, int tx, int row0, int rows_valid, int cols_valid, int64_t ld,
                                           T* dst) {
#pragma unroll
  for (int a = 0; a < kPerThread; ++a) {
    const int row = row0 + ty + 16 * a;
    if (row >= rows_valid) continue;
#pragma unroll
    for (int c = 0; c < Dims<kMaxD>::kCols; ++c) {
      const int d = tx + 16 * c;
      if (d < cols_valid) store_f32(dst + static_cast<int64_t>(row) * ld + d, acc[a][c] * scale);
    }
  }
}

// The head-dim bucket a head dim runs in: the smallest of 32, 64, 128 that holds it, or 0
// (unsupported). Kernels are instantiated per bucket.
inline int head_dim_bucket(int64_t head_dim) {
  if (head_dim <= 0) return 0;
  if (head_dim <= 32) return 32;
  if (head_dim <= 64) return 64;
  return head_dim <= 128 ? 128 : 0;
}

// Opts `kernel` in to `bytes` of dynamic shared memory (above the default 48 KiB), then
// reports whether that worked.
template <typename Kernel>
cudaError_t allow_shared_memory(Kernel kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

}  // namespace shardtrain::kernels::attention_tile

// Deterministic sums and sums of squares.
//
// Float atomics would make the result depend on which block finished first, and a grid
// sized to the device would make it depend on the GPU; both break bitwise-identical reruns
// and resumes. So the chunking is a constant: the CPU backend's 4096-element chunks. Pass
// one gives each chunk to one block, whose threads each add a strided share in double and
// then combine through block_sum's fixed tree; pass two is a single block that adds the
// chunk sums (each thread a strided share, any number of chunks) through the same tree.
// Every addition happens in an order fixed by n alone. Squares are formed in double, where
// the product of two floats is exact.
#include "kernels/reduce.h"

#include "kernels/kernel_util.cuh"

namespace shardtrain::kernels {

namespace {

constexpr int64_t kReduceChunk = 4096;  // the CPU backend's chunk

__host__ __device__ inline int64_t chunk_count(int64_t n) { return (n + kReduceChunk - 1) / kReduceChunk; }

template <ReduceKind kKind>
__device__ __forceinline__ double term(float v) {
  const double d = v;
  return kKind == ReduceKind::kSumSquares ? d * d : d;
}

// partial[ch] = sum of chunk ch (block-stride over chunks).
template <ReduceKind kKind>
__global__ void reduce_chunks_kernel(const float* __restrict__ x, int64_t n, double* __restrict__ partial) {
  const int64_t chunks = chunk_count(n);
  for (int64_t ch = blockIdx.x; ch < chunks; ch += gridDim.x) {
    const int64_t end = n - ch * kReduceChunk < kReduceChunk ? n : (ch + 1) * kReduceChunk;
    double acc = 0.0;
    for (int64_t i = ch * kReduceChunk + threadIdx.x; i < end; i += blockDim.x) acc += term<kKind>(x[i]);
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[ch] = acc;
  }
}

// *out = sum of partial[0, count); launched with exactly one block.
__global__ void reduce_partials_kernel(const double* __restrict__ partial, int64_t count, double* __restrict__ out) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *out = acc;
}

template <ReduceKind kKind>
cudaError_t reduce_sum_impl(const float* x, int64_t n, void* workspace, double* out, cudaStream_t stream) {
  const int64_t chunks = chunk_count(n);
  // A single chunk is the whole sum: write it directly, no workspace and no second pass.
  double* partial = chunks == 1 ? out : static_cast<double*>(workspace);
  reduce_chunks_kernel<kKind><<<grid_1d(chunks, 1), kBlockSize, 0, stream>>>(x, n, partial);
  if (chunks == 1) return cudaGetLastError();
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  reduce_partials_kernel<<<1, kBlockSize, 0, stream>>>(partial, chunks, out);
  return cudaGetLastError();
}

}  // namespace

size_t reduce_sum_workspace_bytes(int64_t n) {
  const int64_t chunks = n > 0 ? chunk_count(n) : 0;
  return chunks > 1 ? static_cast<size_t>(chunks) * sizeof(double) : 0;
}

cudaError_t reduce_sum(const float* x, int64_t n, ReduceKind kind, void* workspace, double* out,
                       cudaStream_t stream) {
  // The sum of nothing is 0 (all-zero bytes are +0.0), and *out is always written.
  if (n <= 0) return cudaMemsetAsync(out, 0, sizeof(double), stream);
  return kind == ReduceKind::kSumSquares ? reduce_sum_impl<ReduceKind::kSumSquares>(x, n, workspace, out, stream)
                                         : reduce_sum_impl<ReduceKind::kSum>(x, n, workspace, out, stream);
}

}  // namespace shardtrain::kernels

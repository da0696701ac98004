// Deterministic sums on the GPU. The input is cut into fixed chunks (the same chunking
// for every launch, independent of the device), each chunk is summed in double by one
// block with a fixed tree, then one block adds the chunk sums in a fixed tree: the same
// n always gives bitwise the same result. (atomicAdd of floats would not.)
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace shardtrain::kernels {

enum class ReduceKind { kSum, kSumSquares };

// Bytes of device workspace reduce_sum needs for n elements.
size_t reduce_sum_workspace_bytes(int64_t n);
// *out (device memory) = sum of x (or of x^2) in double. `workspace` has at least
// reduce_sum_workspace_bytes(n) bytes of device memory.
cudaError_t reduce_sum(const float* x, int64_t n, ReduceKind kind, void* workspace, double* out,
                       cudaStream_t stream);

}  // namespace shardtrain::kernels

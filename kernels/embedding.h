// Embedding lookup and its gradient on the GPU: table [vocab, dim], ids [n] int32. Same
// semantics as the Backend primitives (backend/backend.h); the CPU backend is the
// reference, and both kernels reproduce its bits exactly.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/bfloat16.h"
namespace shardtrain::kernels {

// y [n, dim] = table[ids[i]]; a row whose id is outside [0, vocab) becomes NaN (the CPU
// backend aborts; a kernel cannot, and NaN shows up in the loss).
cudaError_t embedding_forward(const int32_t* ids, int64_t n, const float* table, int64_t vocab, int64_t dim,
                              float* y, cudaStream_t stream);

// Bytes of device workspace embedding_backward needs for n ids over `vocab` rows.
// REQUIRES n <= INT32_MAX.
cudaError_t embedding_backward_workspace_bytes(int64_t n, int64_t vocab, size_t* bytes);
// dtable[ids[i]] += dy[i], each table row adding its tokens' rows in increasing i in fp32,
// exactly as the CPU backend does (so the bits are the CPU's, whatever the launch shape).
// Ids outside [0, vocab) are skipped. `workspace` has
// embedding_backward_workspace_bytes(n, vocab) bytes of device memory.
cudaError_t embedding_backward(const int32_t* ids, int64_t n, const float* dy, int64_t vocab, int64_t dim,
                               void* workspace, size_t workspace_bytes, float* dtable, cudaStream_t stream);


// ---- bf16 (mixed precision): the table is the bf16 compute copy and y bf16 (a copy, no
// rounding); dy bf16 is accumulated into the fp32 master gradient dtable in the same fixed
// order as the fp32 kernel, so results are deterministic. Same workspace size function.
cudaError_t embedding_forward(const int32_t* ids, int64_t n, const bf16* table, int64_t vocab, int64_t dim,
                              bf16* y, cudaStream_t stream);
cudaError_t embedding_backward(const int32_t* ids, int64_t n, const bf16* dy, int64_t vocab, int64_t dim,
                               void* workspace, size_t workspace_bytes, float* dtable, cudaStream_t stream);

}  // namespace shardtrain::kernels

// LayerNorm over the last dimension on the GPU: x [rows, C] with weight and bias [C]. Same
// semantics as the Backend primitives (backend/backend.h); the CPU backend is the
// reference.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/bfloat16.h"
namespace shardtrain::kernels {

// y = (x - mean) * rstd * weight + bias, with mean and rstd = 1 / sqrt(var + eps) [rows]
// (biased variance) computed in double and kept for backward.
cudaError_t layernorm_forward(const float* x, const float* weight, const float* bias, float eps, int64_t rows,
                              int64_t channels, float* y, float* mean, float* rstd, cudaStream_t stream);

// sum = a + b, then layernorm_forward(sum) into y, mean and rstd, in one kernel that reads
// a and b once: the same bits as kernels::add followed by layernorm_forward. a, b, sum and
// y [rows, C]; sum may alias a or b, y aliases nothing.
cudaError_t add_layernorm_forward(const float* a, const float* b, const float* weight, const float* bias, float eps,
                                  int64_t rows, int64_t channels, float* sum, float* y, float* mean, float* rstd,
                                  cudaStream_t stream);

// Bytes of device workspace layernorm_backward needs.
size_t layernorm_backward_workspace_bytes(int64_t rows, int64_t channels);
// dx [rows, C] is overwritten; dweight and dbias [C] are accumulated (+=), each column
// summed over fixed 64-row chunks and then over the chunks in order: deterministic, no
// atomics. `workspace` has layernorm_backward_workspace_bytes(rows, channels) bytes of
// device memory (contents ignored). dx may alias dy: the parameter sums read dy first.
cudaError_t layernorm_backward(const float* dy, const float* x, const float* weight, const float* mean,
                               const float* rstd, int64_t rows, int64_t channels, void* workspace, float* dx,
                               float* dweight, float* dbias, cudaStream_t stream);


// ---- bf16 (mixed precision): x, weight, bias, y, dy and dx bf16; mean and rstd fp32 and
// the statistics computed as in the fp32 kernels; dweight and dbias are the fp32 master
// gradients, accumulated. Same workspace size function.
cudaError_t layernorm_forward(const bf16* x, const bf16* weight, const bf16* bias, float eps, int64_t rows,
                              int64_t channels, bf16* y, float* mean, float* rstd, cudaStream_t stream);
cudaError_t add_layernorm_forward(const bf16* a, const bf16* b, const bf16* weight, const bf16* bias, float eps,
                                  int64_t rows, int64_t channels, bf16* sum, bf16* y, float* mean, float* rstd,
                                  cudaStream_t stream);
cudaError_t layernorm_backward(const bf16* dy, const bf16* x, const bf16* weight, const float* mean,
                               const float* rstd, int64_t rows, int64_t channels, void* workspace, bf16* dx,
                               float* dweight, float* dbias, cudaStream_t stream);

}  // namespace shardtrain::kernels

// Convolution (im2col / col2im, for a cuBLAS GEMM) and 2-D max pooling on the GPU.
// Same layouts and semantics as the Backend primitives (backend/backend.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/primitive_params.h"

namespace shardtrain::kernels {

// cols [col_rows, batch * col_cols] from x [batch, C, H, W]; zero outside the image.
cudaError_t im2col(const float* x, const ConvGeometry& g, int64_t batch, float* cols, cudaStream_t stream);
// dx [batch, C, H, W] = adjoint of im2col (overwrites dx). Gathers per input pixel (no
// atomics) in (kh, kw) order, so it is deterministic.
cudaError_t col2im(const float* cols, const ConvGeometry& g, int64_t batch, float* dx, cudaStream_t stream);
// argmax = index of the max within the sample-channel plane (first on ties).
cudaError_t maxpool2d_forward(const float* x, const PoolGeometry& g, float* y, int32_t* argmax,
                              cudaStream_t stream);
// dx = scatter of dy to argmax (overwrites dx). Gathers per input pixel, deterministic.
cudaError_t maxpool2d_backward(const float* dy, const int32_t* argmax, const PoolGeometry& g, float* dx,
                               cudaStream_t stream);

}  // namespace shardtrain::kernels

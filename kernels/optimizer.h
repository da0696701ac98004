// Fused optimizer steps over flat parameter buffers: one kernel reads p, g and the state
// once and writes p and the state once. The arithmetic is the CPU backend's
// (PyTorch's single-tensor implementations, op by op in fp32, with the scalar
// coefficients computed on the host in double and rounded once).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/primitive_params.h"

namespace shardtrain::kernels {

// momentum_buf may be null when hp.momentum == 0.
cudaError_t sgd_step(float* p, const float* g, float* momentum_buf, int64_t n, const SgdParams& hp,
                     bool first_step, cudaStream_t stream);
cudaError_t adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWParams& hp,
                       cudaStream_t stream);

}  // namespace shardtrain::kernels

// Elementwise CUDA kernels: fill, scale, add, activations, dropout, bias add / grad, axis
// swap.
// Each launcher enqueues on `stream` and returns the launch's cudaError_t (cudaSuccess
// when n == 0 and nothing was launched). Semantics are exactly those of the Backend
// primitive of the same name (backend/backend.h); the CPU backend is the reference.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bfloat16.h"
#include "core/primitive_params.h"

namespace shardtrain::kernels {

cudaError_t fill_f32(float* x, int64_t n, float value, cudaStream_t stream);
cudaError_t fill_i32(int32_t* x, int64_t n, int32_t value, cudaStream_t stream);
// x *= alpha; alpha == 0 writes exact zeros (clears NaN/inf, as the CPU backend).
cudaError_t scale(float* x, int64_t n, float alpha, cudaStream_t stream);

// y = a + b; y may alias a or b.
cudaError_t add(const float* a, const float* b, float* y, int64_t n, cudaStream_t stream);

cudaError_t activation_forward(Activation act, const float* x, float* y, int64_t n, cudaStream_t stream);
cudaError_t activation_backward(Activation act, const float* x, const float* dy, float* dx, int64_t n,
                                cudaStream_t stream);
// Counter-based: element i keeps iff counter_rng_uniform(base(seed, stream), offset + i) >= p,
// so the mask is the CPU backend's, bit for bit, whatever the launch shape.
cudaError_t dropout(const float* x, float* y, int64_t n, float p, DropoutKey key, cudaStream_t stream);

// y[o, c, i] += b[c] for y [outer, channels, inner].
cudaError_t bias_add(float* y, const float* b, int64_t outer, int64_t channels, int64_t inner,
                     cudaStream_t stream);
// db[c] += sum over (o, i) of dy[o, c, i]; one block per channel, fixed-order tree sum in
// double (then added to db[c] in double), so the result is deterministic.
cudaError_t bias_grad(const float* dy, float* db, int64_t outer, int64_t channels, int64_t inner,
                      cudaStream_t stream);
// y [b, a, inner] from x [a, b, inner].
cudaError_t swap_outer_axes(const float* x, float* y, int64_t a, int64_t b, int64_t inner, cudaStream_t stream);


// ---- bf16 (mixed precision). Values are bf16 in memory and fp32 in registers: each
// kernel reads bf16, computes exactly what its fp32 twin computes, and rounds once to
// nearest-even on the store. Same contracts (aliasing, keys) as the fp32 launchers.
cudaError_t add(const bf16* a, const bf16* b, bf16* y, int64_t n, cudaStream_t stream);
cudaError_t activation_forward(Activation act, const bf16* x, bf16* y, int64_t n, cudaStream_t stream);
cudaError_t activation_backward(Activation act, const bf16* x, const bf16* dy, bf16* dx, int64_t n,
                                cudaStream_t stream);
cudaError_t dropout(const bf16* x, bf16* y, int64_t n, float p, DropoutKey key, cudaStream_t stream);
// y[o, c, i] += b[c] (the sum in fp32, rounded once).
cudaError_t bias_add(bf16* y, const bf16* b, int64_t outer, int64_t channels, int64_t inner, cudaStream_t stream);
// db[c] (fp32) += sum over (o, i) of dy[o, c, i]: bf16 gradients in, the fp32 master
// gradient accumulated, with the fp32 launcher's fixed-order double sum.
cudaError_t bias_grad(const bf16* dy, float* db, int64_t outer, int64_t channels, int64_t inner,
                      cudaStream_t stream);
// dst = src rounded to nearest-even (fp32 -> bf16) / widened exactly (bf16 -> fp32).
cudaError_t convert(const float* src, bf16* dst, int64_t n, cudaStream_t stream);
cudaError_t convert(const bf16* src, float* dst, int64_t n, cudaStream_t stream);

}  // namespace shardtrain::kernels

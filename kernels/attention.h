// Causal multi-head self-attention on the GPU over the fused qkv [B, T, 3C] layout of
// AttentionGeometry (core/primitive_params.h): training forward and backward in the flash
// attention style (no [T, T] matrix in global memory), and KV-cached decoding. Semantics
// are the Backend primitives' (backend/backend.h); the CPU backend is the reference.
//
// Head dims up to kAttentionMaxHeadDim. Forward and backward use up to 146 KiB of shared
// memory per block for head dims above 64 (83 KiB up to 64), which A100 and H100 have.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/bfloat16.h"
#include "core/primitive_params.h"

namespace shardtrain::kernels {

constexpr int64_t kAttentionMaxHeadDim = 128;
// Sequences are cut into tiles of this many positions; tiles index gridDim.y, hence the
// limit on the sequence length.
constexpr int64_t kAttentionMaxSeq = int64_t{65535} * 64;

// out [B, T, C], lse [B, H, T] (log-sum-exp of each query row's scaled scores).
cudaError_t attention_forward(const float* qkv, const AttentionGeometry& g, float* out, float* lse,
                              cudaStream_t stream);

// Bytes of device workspace attention_backward needs (D_i = dout_i . out_i per row).
size_t attention_backward_workspace_bytes(const AttentionGeometry& g);
// dqkv [B, T, 3C] is overwritten, deterministically (no atomics). out and lse are the
// forward's; `workspace` has attention_backward_workspace_bytes(g) bytes of device memory.
cudaError_t attention_backward(const float* dout, const float* qkv, const float* out, const float* lse,
                               const AttentionGeometry& g, void* workspace, float* dqkv, cudaStream_t stream);

// qkv [B, n, 3C] holds positions [pos, pos + n) (g.seq = n): their k and v go into cache
// [B, max_seq, 2C] at rows [pos, pos + n), then out [B, n, C] is each new query attending
// to cache rows <= its position. REQUIRES 0 <= pos, pos + n <= max_seq, n <= 65535.
cudaError_t attention_decode(const float* qkv, int64_t pos, int64_t max_seq, const AttentionGeometry& g,
                             float* cache, float* out, cudaStream_t stream);


// ---- bf16 (mixed precision): qkv, out, dout, dqkv and the KV cache bf16; scores, the
// online softmax, lse and the backward's D_i = dout_i . out_i in fp32; outputs rounded once.
// Same workspace size function and shared-memory limits (or less).
cudaError_t attention_forward(const bf16* qkv, const AttentionGeometry& g, bf16* out, float* lse,
                              cudaStream_t stream);
cudaError_t attention_backward(const bf16* dout, const bf16* qkv, const bf16* out, const float* lse,
                               const AttentionGeometry& g, void* workspace, bf16* dqkv, cudaStream_t stream);
cudaError_t attention_decode(const bf16* qkv, int64_t pos, int64_t max_seq, const AttentionGeometry& g,
                             bf16* cache, bf16* out, cudaStream_t stream);

}  // namespace shardtrain::kernels

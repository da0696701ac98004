// Gradient bucket kernels: pack many tensors into one flat buffer (scaled), unpack back.
// The segment table travels in the kernel's parameters (up to kBucketSegmentsPerLaunch per
// launch, more segments take more launches), so no device-side table has to be kept in
// sync: the "multi-tensor apply" pattern.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bfloat16.h"
#include "core/primitive_params.h"

namespace shardtrain::kernels {

constexpr int kBucketSegmentsPerLaunch = 64;

// flat = scale * concat(segs[0..count)).
cudaError_t grad_bucket_pack(const GradSegment* segs, int count, float scale, float* flat, cudaStream_t stream);
// segs[s] = scale * its part of flat.
cudaError_t grad_bucket_unpack(const float* flat, float scale, const GradSegment* segs, int count,
                               cudaStream_t stream);


// ---- bf16 buckets (comm.grad_dtype BF16): gradients cross the wire as bf16. pack rounds
// scale * concat(segs) to bf16 (nearest-even); unpack widens flat to fp32 and scales.
cudaError_t grad_bucket_pack(const GradSegment* segs, int count, float scale, bf16* flat, cudaStream_t stream);
cudaError_t grad_bucket_unpack(const bf16* flat, float scale, const GradSegment* segs, int count,
                               cudaStream_t stream);

}  // namespace shardtrain::kernels

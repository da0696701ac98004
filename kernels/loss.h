// Softmax cross-entropy and accuracy counting on the GPU. Rows of logits [n, ld] whose
// first c columns are the classes; columns [c, ld) are padding (a vocabulary padded to a
// multiple of 64) and are never read by the forward or the count.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bfloat16.h"
namespace shardtrain::kernels {

// stats [n, 2] = (row max, 1 / sum exp(z - max)), the sum in double;
// losses[i] = log(sum exp(z - max)) - (z[label] - max), NaN for a label outside [0, c).
// One read of each row (online softmax).
cudaError_t softmax_xent_forward(const float* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                                 float* stats, float* losses, cudaStream_t stream);
// dlogits [n, ld] = (exp(z - max) * inv - onehot(label)) * scale in the class columns, 0 in
// the padding. dlogits may alias logits: each element is read and then written by the
// same thread.
cudaError_t softmax_xent_backward(const float* logits, int64_t ld, const float* stats, const int32_t* labels,
                                  int64_t n, int64_t c, float scale, float* dlogits, cudaStream_t stream);
// *count (device memory) = number of rows whose first argmax over the c classes equals the
// label. Overwrites *count (integer atomics: exact, order-free).
cudaError_t count_correct(const float* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                          unsigned long long* count, cudaStream_t stream);


// ---- bf16 logits (mixed precision): softmax, stats and losses in fp32 as above; dlogits
// bf16 (rounded once; may alias logits).
cudaError_t softmax_xent_forward(const bf16* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                                 float* stats, float* losses, cudaStream_t stream);
cudaError_t softmax_xent_backward(const bf16* logits, int64_t ld, const float* stats, const int32_t* labels,
                                  int64_t n, int64_t c, float scale, bf16* dlogits, cudaStream_t stream);
cudaError_t count_correct(const bf16* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                          unsigned long long* count, cudaStream_t stream);

}  // namespace shardtrain::kernels

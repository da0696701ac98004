// Softmax cross-entropy and accuracy counting on the GPU; one block (or warp) per row.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace shardtrain::kernels {

// probs = softmax(logits [n, c]); losses[i] = log(sum exp(z - max)) - (z[label] - max),
// the denominator summed in double as the CPU backend does.
cudaError_t softmax_xent_forward(const float* logits, const int32_t* labels, int64_t n, int64_t c, float* probs,
                                 float* losses, cudaStream_t stream);
// dlogits = (probs - onehot(labels)) * scale.
cudaError_t softmax_xent_backward(const float* probs, const int32_t* labels, int64_t n, int64_t c, float scale,
                                  float* dlogits, cudaStream_t stream);
// *count (device memory) = number of rows whose first argmax equals the label. Overwrites
// *count (integer atomics: exact, order-free).
cudaError_t count_correct(const float* logits, const int32_t* labels, int64_t n, int64_t c,
                          unsigned long long* count, cudaStream_t stream);

}  // namespace shardtrain::kernels

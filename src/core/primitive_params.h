// Plain parameter structs of the device primitives, shared by the Backend interface
// (backend/backend.h) and the CUDA kernels (kernels/*.h), which must not include backend
// headers. No behaviour here: geometry and hyperparameters only.
#pragma once

#include <cstdint>

namespace shardtrain {

enum class GemmOp { kNoTrans, kTrans };
// kGelu is the exact erf form (torch.nn.GELU()); kGeluTanh the tanh approximation GPT-2
// uses (torch.nn.GELU(approximate="tanh")).
enum class Activation { kRelu, kGelu, kGeluTanh };

// Geometry of a 2-D convolution on one sample: input [C, H, W] -> output [K, Ho, Wo].
struct ConvGeometry {
  int64_t channels, height, width;      // input C, H, W
  int64_t kernel, stride, padding;      // square kernel
  int64_t out_height, out_width;        // Ho, Wo
  int64_t col_rows() const { return channels * kernel * kernel; }  // im2col rows
  int64_t col_cols() const { return out_height * out_width; }      // im2col columns
};

// Geometry of 2-D max pooling on [N, C, H, W] -> [N, C, Ho, Wo] (no padding).
struct PoolGeometry {
  int64_t batch, channels, height, width;
  int64_t kernel, stride;
  int64_t out_height, out_width;
};

// Causal multi-head self-attention over `batch` sequences of `seq` positions.
// The fused QKV projection's output qkv [batch, seq, 3C] (C = heads * head_dim) is laid out
// as nanoGPT's c_attn: q = columns [0, C), k = [C, 2C), v = [2C, 3C); within each, head h
// owns columns [h * head_dim, (h + 1) * head_dim). Scores are scaled by 1/sqrt(head_dim).
struct AttentionGeometry {
  int64_t batch, seq, heads, head_dim;
  int64_t channels() const { return heads * head_dim; }
};

// Counter-based dropout key: element i of a call keeps its value iff
// uniform(seed, stream, offset + i) >= p, so a mask depends only on the global element
// index, never on the launch shape, thread count or how the batch is split over ranks.
struct DropoutKey {
  uint64_t seed;    // job seed
  uint64_t stream;  // distinguishes layer and step
  uint64_t offset;  // global index of the call's first element
};

struct SgdParams {
  float lr, momentum, weight_decay;
};
struct AdamWParams {
  float lr, beta1, beta2, eps, weight_decay;
  int64_t step;  // 1-based step count, for bias correction
};

// One tensor of a gradient bucket (a device pointer of the backend it is used with).
struct GradSegment {
  float* data;
  int64_t numel;
};

}  // namespace shardtrain

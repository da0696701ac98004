// Backend: the primitives every device implements. Layers, the model and the optimizers
// are written once against this interface and never branch on the device.
//
// Contract for every compute primitive:
//   - pointers are device pointers of this backend (host memory for the CPU backend),
//     contiguous, row-major, fp32 unless the signature says otherwise;
//   - work is issued in order on the backend's compute stream; results are visible to
//     later primitives of the same backend without synchronize(). Functions that return
//     a host value (sum, count_correct, copy_to_host) synchronize first.
//   - outputs are overwritten unless the name says "accumulate".
//   - results are deterministic for a fixed thread count / launch configuration
//     (fixed reduction orders), which is what makes resumed runs bitwise identical.
//   - errors: device work is asynchronous, so a failed launch or a device fault may only
//     be seen later. Primitives return nothing; the backend keeps the FIRST error
//     (sticky, with the primitive's name) and reports it from synchronize() and status().
//     After an error, results are unspecified; callers check synchronize() once per step
//     and at every host hand-off, and stop.
// Thread-safety: a Backend is used by one thread (the trainer's).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "core/tensor.h"

namespace shardtrain {

enum class GemmOp { kNoTrans, kTrans };
enum class Activation { kRelu, kGelu };  // GELU is the exact erf form (torch.nn.GELU())

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

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;  // "cpu (OpenBLAS, 2 threads)"
  // Identifies the physical device, so ranks can tell whether they share one:
  // "cpu" for the CPU backend, "GPU-<uuid>" for a CUDA device.
  virtual std::string device_identity() const = 0;

  // ---- memory
  // Zero-filled tensor on this device. Throws std::bad_alloc when memory runs out.
  virtual Tensor alloc(const Shape& shape, DType dtype = DType::kFloat32) = 0;
  // Raw copies between host memory and this device's memory, ordered on the compute
  // stream. memcpy_from_host returns when `src` may be reused (the bytes are on the device
  // or staged by the driver); memcpy_to_host returns when the bytes are on the host.
  virtual void memcpy_from_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void memcpy_to_host(void* dst, const void* src, size_t bytes) = 0;
  // Copies dst.nbytes() bytes.
  void copy_from_host(Tensor& dst, const void* src) { memcpy_from_host(dst.data<char>(), src, dst.nbytes()); }
  void copy_to_host(const Tensor& src, void* dst) { memcpy_to_host(dst, src.data<char>(), src.nbytes()); }
  // REQUIRES: same numel and dtype.
  virtual void copy(const Tensor& src, Tensor& dst) = 0;
  virtual void fill(Tensor& t, float value) = 0;
  // Waits for all work issued so far; returns the first error since the backend was made
  // (sticky: once failed, a backend stays failed).
  virtual Status synchronize() = 0;
  // The sticky error without waiting (OK if none seen yet).
  virtual Status status() const = 0;

  // ---- dense
  // C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C[m,n]; op(A) = A or A^T.
  virtual void gemm(GemmOp op_a, GemmOp op_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float* a, const float* b, float beta, float* c) = 0;
  // y[o, c, i] += b[c] for y of shape [outer, channels, inner].
  virtual void bias_add(float* y, const float* b, int64_t outer, int64_t channels, int64_t inner) = 0;
  // db[c] = sum over o, i of dy[o, c, i].
  virtual void bias_grad(const float* dy, float* db, int64_t outer, int64_t channels, int64_t inner) = 0;
  // y [b, a, inner] from x [a, b, inner]: y[j, i, :] = x[i, j, :] (x and y must not overlap).
  virtual void swap_outer_axes(const float* x, float* y, int64_t a, int64_t b, int64_t inner) = 0;

  // ---- elementwise
  virtual void activation_forward(Activation act, const float* x, float* y, int64_t n) = 0;
  // dx = dy * act'(x).
  virtual void activation_backward(Activation act, const float* x, const float* dy, float* dx, int64_t n) = 0;
  // y = x * keep / (1 - p). Applied to dy with the same key it is its own backward.
  virtual void dropout(const float* x, float* y, int64_t n, float p, DropoutKey key) = 0;
  virtual void scale(float* x, int64_t n, float alpha) = 0;  // x *= alpha

  // ---- convolution and pooling (`batch` samples of ConvGeometry / the whole PoolGeometry)
  // cols [col_rows, batch * col_cols] from x [batch, C, H, W]: sample n owns columns
  // [n * col_cols, (n + 1) * col_cols), so a whole batch convolves in one GEMM.
  virtual void im2col(const float* x, const ConvGeometry& g, int64_t batch, float* cols) = 0;
  // dx [batch, C, H, W] = sum of cols [col_rows, batch * col_cols] scattered back
  // (overwrites dx; the exact adjoint of im2col).
  virtual void col2im(const float* cols, const ConvGeometry& g, int64_t batch, float* dx) = 0;
  // argmax[i] = flat index into the sample-channel plane of the max (first on ties).
  virtual void maxpool2d_forward(const float* x, const PoolGeometry& g, float* y, int32_t* argmax) = 0;
  virtual void maxpool2d_backward(const float* dy, const int32_t* argmax, const PoolGeometry& g, float* dx) = 0;

  // ---- loss
  // For logits [n, c] and labels [n] in [0, c): probs = softmax(logits),
  // losses[i] = -log probs[i, labels[i]].
  virtual void softmax_xent_forward(const float* logits, const int32_t* labels, int64_t n, int64_t c,
                                    float* probs, float* losses) = 0;
  // dlogits = (probs - onehot(labels)) * scale.
  virtual void softmax_xent_backward(const float* probs, const int32_t* labels, int64_t n, int64_t c,
                                     float scale, float* dlogits) = 0;
  // Number of rows whose argmax (first on ties) equals the label. Synchronizes.
  virtual int64_t count_correct(const float* logits, const int32_t* labels, int64_t n, int64_t c) = 0;

  // ---- reductions (fixed order; synchronize and return to host)
  virtual double sum(const float* x, int64_t n) = 0;
  virtual double sum_squares(const float* x, int64_t n) = 0;

  // ---- optimizers over flat buffers
  // PyTorch SGD: g' = g + wd*p; buf = momentum*buf + g' (buf = g' on the first step when
  // momentum > 0); p -= lr * (momentum > 0 ? buf : g').
  virtual void sgd_step(float* p, const float* g, float* momentum_buf, int64_t n, const SgdParams& hp,
                        bool first_step) = 0;
  // PyTorch AdamW: p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
  // p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
  virtual void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWParams& hp) = 0;

  // ---- gradient buckets: many tensors <-> one flat buffer (what one collective moves)
  // Segment s is segs[s].numel floats at segs[s].data; in the flat buffer they lie back
  // to back in segment order. `segs` itself is a host array (of device pointers). pack: flat = scale * concat(segments); unpack: each segment
  // = scale * its part of flat. Segments must not overlap flat.
  virtual void grad_bucket_pack(const GradSegment* segs, int count, float scale, float* flat) = 0;
  virtual void grad_bucket_unpack(const float* flat, float scale, const GradSegment* segs, int count) = 0;
};

}  // namespace shardtrain

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

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "core/primitive_params.h"
#include "core/status.h"
#include "core/tensor.h"

namespace shardtrain {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;  // "cpu (OpenBLAS, 2 threads)"
  // Identifies the physical device, so ranks can tell whether they share one:
  // "cpu" for the CPU backend, "GPU-<uuid>" for a CUDA device.
  virtual std::string device_identity() const = 0;
  // The device's peak dense FLOP/s for GEMMs whose inputs are `math` (fp32: no tensor
  // cores; bf16: dense tensor cores), for model FLOPs utilisation; 0 when unknown (CPUs:
  // progress shows achieved GFLOP/s instead).
  virtual double peak_flops(DType math = DType::kFloat32) const { (void)math; return 0; }

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
  // db[c] += sum over o, i of dy[o, c, i] (accumulates: parameter gradients are zeroed once
  // per step and every use of a parameter adds to them).
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
  // Rows of logits [n, ld] whose first c columns are the classes; columns [c, ld) are
  // padding (a vocabulary padded to a multiple of 64) and never take part. labels [n] in
  // [0, c). losses[i] = -log softmax(logits[i, :c])[labels[i]]; stats [n, 2] keeps each
  // row's max and 1 / sum(exp(z - max)), so backward recomputes the softmax from the
  // logits instead of a probabilities tensor as large as the logits.
  virtual void softmax_xent_forward(const float* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                                    float* stats, float* losses) = 0;
  // dlogits [n, ld] = (softmax(logits[i, :c]) - onehot(labels[i])) * scale in the class
  // columns and 0 in the padding. dlogits may alias logits (then the logits are consumed).
  virtual void softmax_xent_backward(const float* logits, int64_t ld, const float* stats, const int32_t* labels,
                                     int64_t n, int64_t c, float scale, float* dlogits) = 0;
  // Number of rows whose argmax over the c class columns (first on ties) equals the label.
  // Synchronizes.
  virtual int64_t count_correct(const float* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c) = 0;

  // ---- reductions (fixed order; synchronize and return to host)
  virtual double sum(const float* x, int64_t n) = 0;
  virtual double sum_squares(const float* x, int64_t n) = 0;
  // True when no element is NaN or infinite. Exactly isfinite(sum_squares(x, n)) (a square
  // of a finite float cannot overflow a double), which is what this default computes;
  // a backend may override it with a cheaper pass, since the trainer checks every step.
  virtual bool all_finite(const float* x, int64_t n) { return std::isfinite(sum_squares(x, n)); }

  // ---- transformer primitives. Tensors are dtype-checked by the backend: fp32 on the CPU
  // (the reference); shapes as stated, contiguous. A mismatch is a programming error and
  // becomes the backend's sticky error (CUDA) or an abort with the primitive's name (CPU).
  // y = a + b elementwise over equal numel; y may alias a or b.
  virtual void add(const Tensor& a, const Tensor& b, Tensor& y) = 0;
  // torch.nn.LayerNorm over the last dimension: x [rows, C] -> y [rows, C] with weight and
  // bias [C]; mean and rstd [rows] are fp32 and kept for backward (rstd = 1/sqrt(var + eps),
  // biased variance). Statistics are computed in fp32 or wider whatever x's dtype.
  virtual void layernorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y,
                                 Tensor& mean, Tensor& rstd) = 0;
  // A residual add and the LayerNorm that reads it (llm.c's fused residual forward):
  // sum = a + b, then layernorm_forward(sum, ...) into y, mean and rstd. a, b, sum and y
  // [rows, C] of one dtype; sum may alias a or b. This base implementation is add then
  // layernorm_forward (the reference, which the fused node therefore matches bit for bit
  // on the CPU); CUDA does both in one kernel that reads a and b once.
  virtual void add_layernorm_forward(const Tensor& a, const Tensor& b, const Tensor& weight, const Tensor& bias,
                                     float eps, Tensor& sum, Tensor& y, Tensor& mean, Tensor& rstd);
  // dx [rows, C] is overwritten; dweight and dbias [C] are accumulated (+=).
  virtual void layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& mean,
                                  const Tensor& rstd, Tensor& dx, Tensor& dweight, Tensor& dbias) = 0;
  // Causal self-attention (AttentionGeometry): out [B, T, C] = softmax(q k^T / sqrt(D) with
  // position j > i masked) v, per head; lse [B, H, T] fp32 receives each query row's
  // log-sum-exp of its scaled scores, which is all backward needs to recompute the
  // probabilities (no [T, T] matrix is kept, as in flash attention).
  virtual void attention_forward(const Tensor& qkv, const AttentionGeometry& g, Tensor& out, Tensor& lse) = 0;
  // dqkv [B, T, 3C] is overwritten. out and lse are forward's.
  virtual void attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                  const AttentionGeometry& g, Tensor& dqkv) = 0;
  // Incremental attention for generation with a KV cache. qkv [B, n, 3C] holds the new
  // positions [pos, pos + n) (g.seq = n); their k and v are written into cache
  // [B, max_seq, 2C] (k in columns [0, C), v in [C, 2C)) at rows [pos, pos + n), then
  // out [B, n, C] is each new query attending to cache rows <= its own position.
  // REQUIRES pos + n <= max_seq.
  virtual void attention_decode(const Tensor& qkv, int64_t pos, const AttentionGeometry& g, Tensor& cache,
                                Tensor& out) = 0;
  // y [n, D] = table[ids[i]] for ids [n] (int32, each in [0, V)) and table [V, D].
  virtual void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& y) = 0;
  // dtable[ids[i]] += dy[i]. Deterministic: each table row adds its contributions in
  // increasing i (no floating-point atomics), whatever the thread or launch layout.
  virtual void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable) = 0;

  // ---- typed entry points (mixed precision). Layers call these with Tensors; the
  // tensors' dtypes pick the path. All float32: exactly the float* primitive of the same
  // name above (this base implementation forwards to it, so the CPU backend, the fp32
  // reference, needs nothing more). bf16 activations: CUDA only (backend/cuda) — a backend
  // without bf16 support reports the call through fail(), naming the primitive and the
  // tensors. Shapes are given by the numeric arguments, as in the float* forms; tensors
  // hold at least what those address.
  // gemm: a and b of one dtype; c float32 or a's dtype. bf16 a, b: fp32 accumulation; c
  // fp32 is how bf16 activations accumulate into fp32 parameter gradients (beta = 1).
  virtual void gemm(GemmOp op_a, GemmOp op_b, int64_t m, int64_t n, int64_t k, float alpha, const Tensor& a,
                    const Tensor& b, float beta, Tensor& c);
  // y and b of one dtype.
  virtual void bias_add(Tensor& y, const Tensor& b, int64_t outer, int64_t channels, int64_t inner);
  // A linear layer with an activation: pre [n, out] = x [n, in] W^T + b, y = act(pre); pre
  // is kept for backward. b may be undefined (no bias). This base implementation is the
  // three primitives in turn (the reference); CUDA fuses bias + GELU (tanh) into the bf16
  // GEMM's epilogue.
  virtual void linear_act_forward(const Tensor& x, const Tensor& w, const Tensor& b, Activation act, int64_t n,
                                  int64_t in, int64_t out, Tensor& pre, Tensor& y);
  // db is float32 (a master gradient); dy float32 or bf16.
  virtual void bias_grad(const Tensor& dy, Tensor& db, int64_t outer, int64_t channels, int64_t inner);
  // x, y (and dy, dx) of one dtype, equal numel.
  virtual void activation_forward(Activation act, const Tensor& x, Tensor& y);
  virtual void activation_backward(Activation act, const Tensor& x, const Tensor& dy, Tensor& dx);
  virtual void dropout(const Tensor& x, Tensor& y, float p, DropoutKey key);
  // logits (and dlogits) float32 or bf16; labels int32; stats and losses float32.
  virtual void softmax_xent_forward(const Tensor& logits, int64_t ld, const Tensor& labels, int64_t n, int64_t c,
                                    Tensor& stats, Tensor& losses);
  virtual void softmax_xent_backward(const Tensor& logits, int64_t ld, const Tensor& stats, const Tensor& labels,
                                     int64_t n, int64_t c, float scale, Tensor& dlogits);
  virtual int64_t count_correct(const Tensor& logits, int64_t ld, const Tensor& labels, int64_t n, int64_t c);
  // dst = src: a copy for equal dtypes, else float32 <-> bf16 (round to nearest even).
  // REQUIRES equal numel.
  virtual void convert(const Tensor& src, Tensor& dst);
  // Gradient buckets whose flat buffer is float32 (the float* forms) or bf16 (gradients
  // on the wire in bf16: comm.grad_dtype); segments are always the fp32 gradients.
  virtual void grad_bucket_pack(const GradSegment* segs, int count, float scale, Tensor& flat);
  virtual void grad_bucket_unpack(const Tensor& flat, float scale, const GradSegment* segs, int count);
  // Whether this backend computes with bf16 activations (the config refuses
  // train.precision BF16 otherwise).
  virtual bool supports_bf16() const { return false; }

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

 protected:
  // A typed entry point was called with tensors it cannot take (a bf16 tensor on a backend
  // without bf16, mismatched dtypes). The CPU backend aborts naming `primitive` (a caller's
  // bug, as its other contract checks); the CUDA backend keeps it as its sticky error.
  virtual void fail(const char* primitive, const std::string& what) = 0;
  // fail() unless every tensor is float32; returns whether they all are.
  bool require_f32(const char* primitive, std::initializer_list<const Tensor*> tensors);
};

}  // namespace shardtrain

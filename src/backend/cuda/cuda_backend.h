// CudaBackend: the Backend primitives on one NVIDIA GPU. GEMM is cuBLAS; everything else
// is a launcher from kernels/*.h. The CPU backend (backend/cpu) is the reference: results
// match it to fp32 rounding (cuBLAS in its default math mode, i.e. no TF32), and dropout
// masks, argmaxes and integer counts match it exactly.
//
// Streams: all work of a backend, copies included, is issued in order on one non-blocking
// compute stream (stream()), which the cuBLAS handle is bound to. Non-blocking means it
// does not synchronize with the legacy default stream, so other components that issue
// work on this device (the NCCL communicator on its own stream) must order themselves
// against stream() with events; nothing here uses the default stream.
//
// Errors: primitives return void (backend.h). Each CUDA / cuBLAS call and each kernel
// launch is checked; the FIRST failure is kept with the primitive's name and the device
// ("cuda:0: dropout: kernels::dropout(...) failed: cudaErrorInvalidConfiguration (...)
// (backend/cuda/cuda_ops.cc:88)") and returned by synchronize() and status(). Once it is
// set, every later primitive does nothing (memcpy_to_host leaves the host buffer
// untouched, sum returns 0): after a device fault nothing can be trusted, and the caller
// stops at its next synchronize(). A fault inside a kernel is asynchronous: it is named
// after the first call that sees it, not the kernel that caused it (CUDA_LAUNCH_BLOCKING=1
// pins it down).
//
// Thread-safety: one thread uses a backend (the trainer's). REQUIRES: that thread's
// current CUDA device is ordinal(); create() makes it so, and one process drives one GPU.
// Tensors may outlive the backend (their deleter needs only the device ordinal).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "backend/cuda/cuda_gemm_lt.h"

namespace shardtrain {

class CudaBackend final : public Backend {
 public:
  // Picks visible device local_rank % device count (backend/device_select.h), makes it
  // current, and creates the stream, the cuBLAS handle and the scratch buffers.
  // Unavailable when no GPU is usable (the message says why); other errors name the
  // device ordinal and the failing call.
  static StatusOr<std::unique_ptr<CudaBackend>> create(int local_rank);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  cudaStream_t stream() const { return stream_; }
  int ordinal() const { return ordinal_; }  // the CUDA device index

  Device device() const override { return Device::kCuda; }
  std::string name() const override { return name_; }  // "cuda:0 (NVIDIA H100 80GB HBM3, sm_90)"
  std::string device_identity() const override { return identity_; }  // "GPU-<uuid>", as nvidia-smi -L
  // Known GPUs only (fp32 and dense bf16 tensor-core peaks from NVIDIA's datasheets).
  double peak_flops(DType math) const override { return math == DType::kBFloat16 ? peak_bf16_ : peak_fp32_; }
  bool supports_bf16() const override { return true; }

  // cudaMalloc, zeroed by a cudaMemsetAsync on stream() (so the zeros are visible to all
  // later work on stream(); other streams must wait on stream() first). Throws
  // std::bad_alloc when cudaMalloc fails: out of memory is logged (size, free and total)
  // but leaves the backend healthy, since a caller may retry smaller; any other failure
  // is kept in status(). Unlike the primitives, alloc still works after a failure.
  Tensor alloc(const Shape& shape, DType dtype) override;
  // `src` may be reused as soon as this returns, whatever kind of host memory it is.
  void memcpy_from_host(void* dst, const void* src, size_t bytes) override;
  // Returns when the bytes are on the host.
  void memcpy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy(const Tensor& src, Tensor& dst) override;
  void fill(Tensor& t, float value) override;  // kFloat32 and kInt32 (value truncated); cuda_ops.cc
  // Waits for everything issued on stream(), then returns the sticky status.
  Status synchronize() override;
  Status status() const override { return sticky_; }

  // cuda_ops.cc
  void gemm(GemmOp op_a, GemmOp op_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            const float* b, float beta, float* c) override;
  void bias_add(float* y, const float* b, int64_t outer, int64_t channels, int64_t inner) override;
  void bias_grad(const float* dy, float* db, int64_t outer, int64_t channels, int64_t inner) override;
  void swap_outer_axes(const float* x, float* y, int64_t a, int64_t b, int64_t inner) override;
  void activation_forward(Activation act, const float* x, float* y, int64_t n) override;
  void activation_backward(Activation act, const float* x, const float* dy, float* dx, int64_t n) override;
  void dropout(const float* x, float* y, int64_t n, float p, DropoutKey key) override;
  void scale(float* x, int64_t n, float alpha) override;
  void im2col(const float* x, const ConvGeometry& g, int64_t batch, float* cols) override;
  void col2im(const float* cols, const ConvGeometry& g, int64_t batch, float* dx) override;
  void maxpool2d_forward(const float* x, const PoolGeometry& g, float* y, int32_t* argmax) override;
  void maxpool2d_backward(const float* dy, const int32_t* argmax, const PoolGeometry& g, float* dx) override;
  void softmax_xent_forward(const float* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                            float* stats, float* losses) override;
  void softmax_xent_backward(const float* logits, int64_t ld, const float* stats, const int32_t* labels, int64_t n,
                             int64_t c, float scale, float* dlogits) override;
  void sgd_step(float* p, const float* g, float* momentum_buf, int64_t n, const SgdParams& hp,
                bool first_step) override;
  void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWParams& hp) override;
  void grad_bucket_pack(const GradSegment* segs, int count, float scale, float* flat) override;
  void grad_bucket_unpack(const float* flat, float scale, const GradSegment* segs, int count) override;

  // Return to the host: kernel into device scratch, async copy into pinned memory, wait.
  // 0 when the backend has failed (the error is in status()).
  int64_t count_correct(const float* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c) override;
  double sum(const float* x, int64_t n) override;
  double sum_squares(const float* x, int64_t n) override;

  // cuda_mixed.cc: the typed entry points (backend.h). float32 tensors take the float*
  // primitives above; bf16 activations take the kernels' bf16 launchers and, for GEMMs,
  // cuBLASLt (backend/cuda/cuda_gemm_lt.h). Other combinations are a sticky
  // InvalidArgument naming the primitive and the dtypes. fill() of a bf16 tensor supports
  // 0 only (gradient buffers); convert() is fp32 <-> bf16 both ways.
  using Backend::activation_backward;
  using Backend::activation_forward;
  using Backend::bias_add;
  using Backend::bias_grad;
  using Backend::count_correct;
  using Backend::dropout;
  using Backend::gemm;
  using Backend::grad_bucket_pack;
  using Backend::grad_bucket_unpack;
  using Backend::softmax_xent_backward;
  using Backend::softmax_xent_forward;
  void gemm(GemmOp op_a, GemmOp op_b, int64_t m, int64_t n, int64_t k, float alpha, const Tensor& a, const Tensor& b,
            float beta, Tensor& c) override;
  void bias_add(Tensor& y, const Tensor& b, int64_t outer, int64_t channels, int64_t inner) override;
  // bf16 with a bias and kGeluTanh: one cuBLASLt GEMM with the GELU_AUX_BIAS epilogue when
  // the operands meet its alignment (out % 8 == 0, 16-byte aligned bias and pre); else,
  // and for fp32, the base class's three primitives.
  void linear_act_forward(const Tensor& x, const Tensor& w, const Tensor& b, Activation act, int64_t n, int64_t in,
                          int64_t out, Tensor& pre, Tensor& y) override;
  void bias_grad(const Tensor& dy, Tensor& db, int64_t outer, int64_t channels, int64_t inner) override;
  void activation_forward(Activation act, const Tensor& x, Tensor& y) override;
  void activation_backward(Activation act, const Tensor& x, const Tensor& dy, Tensor& dx) override;
  void dropout(const Tensor& x, Tensor& y, float p, DropoutKey key) override;
  void softmax_xent_forward(const Tensor& logits, int64_t ld, const Tensor& labels, int64_t n, int64_t c,
                            Tensor& stats, Tensor& losses) override;
  void softmax_xent_backward(const Tensor& logits, int64_t ld, const Tensor& stats, const Tensor& labels, int64_t n,
                             int64_t c, float scale, Tensor& dlogits) override;
  int64_t count_correct(const Tensor& logits, int64_t ld, const Tensor& labels, int64_t n, int64_t c) override;
  void convert(const Tensor& src, Tensor& dst) override;
  void grad_bucket_pack(const GradSegment* segs, int count, float scale, Tensor& flat) override;
  void grad_bucket_unpack(const Tensor& flat, float scale, const GradSegment* segs, int count) override;

  // cuda_transformer.cc. Activation tensors are float32 or bf16, all of one dtype (ids
  // int32; mean, rstd, lse float32; parameter gradients float32), on this GPU with the sizes
  // backend.h states; anything else is kept as an InvalidArgument sticky error naming the
  // primitive and the tensor, and nothing is launched.
  void add(const Tensor& a, const Tensor& b, Tensor& y) override;
  void layernorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y, Tensor& mean,
                         Tensor& rstd) override;
  void add_layernorm_forward(const Tensor& a, const Tensor& b, const Tensor& weight, const Tensor& bias, float eps,
                             Tensor& sum, Tensor& y, Tensor& mean, Tensor& rstd) override;
  void layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& mean,
                          const Tensor& rstd, Tensor& dx, Tensor& dweight, Tensor& dbias) override;
  // Head dims up to 128 (kernels/attention.h).
  void attention_forward(const Tensor& qkv, const AttentionGeometry& g, Tensor& out, Tensor& lse) override;
  void attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out, const Tensor& lse,
                          const AttentionGeometry& g, Tensor& dqkv) override;
  void attention_decode(const Tensor& qkv, int64_t pos, const AttentionGeometry& g, Tensor& cache,
                        Tensor& out) override;
  // An id outside [0, V) gives a NaN row (the CPU backend aborts instead).
  void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& y) override;
  void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable) override;

 protected:
  void fail(const char* primitive, const std::string& what) override { check(primitive, false, what); }

 private:
  // What the reductions return through: written by kernels, copied to pinned host memory.
  struct Scalars {
    double sum;
    unsigned long long count;
  };

  explicit CudaBackend(int ordinal) : ordinal_(ordinal) {}
  Status init();
  // Keeps `s` as the sticky error if it is the first one, prefixed with the device and
  // `primitive`. Returns whether the backend is still healthy (s OK and no earlier error).
  bool record(const char* primitive, const Status& s);
  bool failed() const { return !sticky_.ok(); }
  // Makes the workspace at least `bytes` long (grow-only). The workspace is scratch for
  // one primitive at a time (reductions, LayerNorm and attention backward, the embedding
  // sort): work is ordered on stream(), so the next primitive's use cannot overlap.
  bool ensure_workspace(const char* primitive, size_t bytes);
  // Records InvalidArgument("<what>") for `primitive` unless `ok`; returns whether the
  // backend is healthy (so `if (!check(...)) return;`).
  bool check(const char* primitive, bool ok, const std::string& what);
  // A tensor argument of a primitive, by name, with the dtype it must have.
  struct TensorArg {
    const char* name;
    const Tensor* tensor;
    DType dtype = DType::kFloat32;
  };
  // check() that every argument is allocated, on this GPU, with its dtype.
  bool check_tensors(const char* primitive, std::initializer_list<TensorArg> args);
  // check() that x is float32 or bf16 (what activations may be).
  bool check_activation_dtype(const char* primitive, const Tensor& x);
  // check() that logits rows of stride ld hold the c classes.
  bool check_row_stride(const char* primitive, int64_t ld, int64_t c);
  // Copies scalars_dev_ to scalars_host_ and waits; false (and recorded) on error.
  bool fetch_scalars(const char* primitive);
  double reduce(const char* primitive, const float* x, int64_t n, bool squares);

  int ordinal_;
  std::string name_, identity_;
  double peak_fp32_ = 0, peak_bf16_ = 0;
  std::unique_ptr<GemmLt> gemm_lt_;  // bf16 GEMMs
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  Scalars* scalars_dev_ = nullptr;   // device memory
  Scalars* scalars_host_ = nullptr;  // pinned host memory (cudaMallocHost)
  void* workspace_ = nullptr;        // scratch of the primitive running (device)
  size_t workspace_bytes_ = 0;
  Status sticky_;
};

// nvidia-smi's form of a device UUID: "GPU-" + 8-4-4-4-12 lowercase hex digits.
std::string gpu_uuid_string(const cudaUUID_t& uuid);

}  // namespace shardtrain

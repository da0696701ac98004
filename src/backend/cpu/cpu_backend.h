// CpuBackend: the reference implementation of every Backend primitive (OpenBLAS GEMM,
// OpenMP loops with fixed, thread-count-determined reduction orders).
#pragma once

#include "backend/backend.h"

namespace shardtrain {

class CpuBackend final : public Backend {
 public:
  // Sets OpenMP and OpenBLAS to `threads` threads (>= 1).
  explicit CpuBackend(int threads);
  Device device() const override { return Device::kCpu; }
  std::string name() const override;
  std::string device_identity() const override { return "cpu"; }
  int threads() const { return threads_; }
  // The typed entry points (backend.h) are the base class's float32 forwarding ones.
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

  Tensor alloc(const Shape& shape, DType dtype) override;
  void memcpy_from_host(void* dst, const void* src, size_t bytes) override;
  void memcpy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy(const Tensor& src, Tensor& dst) override;
  void fill(Tensor& t, float value) override;
  // CPU primitives run synchronously and cannot fail after their arguments were checked.
  Status synchronize() override { return Status::Ok(); }
  Status status() const override { return Status::Ok(); }

  void gemm(GemmOp op_a, GemmOp op_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            const float* b, float beta, float* c) override;
  void bias_add(float* y, const float* b, int64_t outer, int64_t channels, int64_t inner) override;
  void bias_grad(const float* dy, float* db, int64_t outer, int64_t channels, int64_t inner) override;
  void swap_outer_axes(const float* x, float* y, int64_t a, int64_t b, int64_t inner) override;

  void activation_forward(Activation act, const float* x, float* y, int64_t n) override;
  void activation_backward(Activation act, const float* x, const float* dy, float* dx, int64_t n) override;
  void dropout(const float* x, float* y, int64_t n, float p, DropoutKey key) override;
  void scale(float* x, int64_t n, float alpha) override;

  // cpu_conv.cc
  void im2col(const float* x, const ConvGeometry& g, int64_t batch, float* cols) override;
  void col2im(const float* cols, const ConvGeometry& g, int64_t batch, float* dx) override;
  void maxpool2d_forward(const float* x, const PoolGeometry& g, float* y, int32_t* argmax) override;
  void maxpool2d_backward(const float* dy, const int32_t* argmax, const PoolGeometry& g, float* dx) override;

  // cpu_loss.cc
  void softmax_xent_forward(const float* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                            float* stats, float* losses) override;
  void softmax_xent_backward(const float* logits, int64_t ld, const float* stats, const int32_t* labels, int64_t n,
                             int64_t c, float scale, float* dlogits) override;
  int64_t count_correct(const float* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c) override;
  double sum(const float* x, int64_t n) override;
  double sum_squares(const float* x, int64_t n) override;
  bool all_finite(const float* x, int64_t n) override;

  // cpu_transformer.cc
  void add(const Tensor& a, const Tensor& b, Tensor& y) override;
  void layernorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y, Tensor& mean,
                         Tensor& rstd) override;
  void layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& mean,
                          const Tensor& rstd, Tensor& dx, Tensor& dweight, Tensor& dbias) override;
  void attention_forward(const Tensor& qkv, const AttentionGeometry& g, Tensor& out, Tensor& lse) override;
  void attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out, const Tensor& lse,
                          const AttentionGeometry& g, Tensor& dqkv) override;
  void attention_decode(const Tensor& qkv, int64_t pos, const AttentionGeometry& g, Tensor& cache,
                        Tensor& out) override;
  void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& y) override;
  void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable) override;

  // cpu_optimizer.cc
  void sgd_step(float* p, const float* g, float* momentum_buf, int64_t n, const SgdParams& hp,
                bool first_step) override;
  void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWParams& hp) override;
  void grad_bucket_pack(const GradSegment* segs, int count, float scale, float* flat) override;
  void grad_bucket_unpack(const float* flat, float scale, const GradSegment* segs, int count) override;

 protected:
  void fail(const char* primitive, const std::string& what) override;

 private:
  int threads_;
};

}  // namespace shardtrain

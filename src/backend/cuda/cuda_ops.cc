// CudaBackend compute primitives: cuBLAS GEMM and one kernels/ launcher per primitive,
// all on stream(). Semantics are the CPU backend's (backend/cpu); the launchers document
// how each kernel keeps them (fixed reduction orders, counter-based dropout, first-max
// argmax).
#include <cublas_v2.h>

#include <limits>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_launch.h"
#include "kernels/bucket.h"
#include "kernels/conv.h"
#include "kernels/elementwise.h"
#include "kernels/loss.h"
#include "kernels/optimizer.h"

namespace shardtrain {

void CudaBackend::fill(Tensor& t, float value) {
  if (t.dtype() == DType::kBFloat16) {
    if (!check("fill", value == 0.0f, "a bf16 tensor can only be filled with 0 (got " + std::to_string(value) + ")"))
      return;
    if (!failed()) record("fill", CUDA_STATUS(cudaMemsetAsync(t.data<char>(), 0, t.nbytes(), stream_)));
  } else if (t.dtype() == DType::kInt32) {
    // Truncation toward zero, as the CPU backend's static_cast.
    ST_LAUNCH("fill", kernels::fill_i32(t.data<int32_t>(), t.numel(), static_cast<int32_t>(value), stream_));
  } else {
    ST_LAUNCH("fill", kernels::fill_f32(t.f32(), t.numel(), value, stream_));
  }
}

// ----------------------------------------------------------------------------- dense

void CudaBackend::gemm(GemmOp op_a, GemmOp op_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                       const float* b, float beta, float* c) {
  if (failed()) return;
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  if (m < 0 || n < 0 || k < 0 || m > kIntMax || n > kIntMax || k > kIntMax) {
    record("gemm", Status::InvalidArgument("dimensions m=" + std::to_string(m) + " n=" + std::to_string(n) +
                                           " k=" + std::to_string(k) + " are not in [0, 2^31) (cuBLAS takes int)"));
    return;
  }
  if (m == 0 || n == 0) return;
  if (k == 0) {  // cuBLAS may not touch C when k == 0; the contract says C = beta * C.
    scale(c, m * n, beta);
    return;
  }
  // cuBLAS is column-major, and a row-major [r, s] matrix read column-major is its
  // transpose [s, r]. So compute C^T[n, m] = op(B)^T[n, k] * op(A)^T[k, m] in
  // column-major: B takes A's place and A takes B's, each with its own op, and the
  // leading dimensions are the row-major ones (as in the CPU backend's cblas call).
  // beta == 0 makes cuBLAS ignore C's old contents (NaN included), as BLAS does.
  const bool ta = op_a == GemmOp::kTrans, tb = op_b == GemmOp::kTrans;
  const int lda = static_cast<int>(ta ? m : k), ldb = static_cast<int>(tb ? k : n);
  record("gemm", CUBLAS_STATUS(cublasSgemm(cublas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                           static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha,
                                           b, ldb, a, lda, &beta, c, static_cast<int>(n))));
}

void CudaBackend::bias_add(float* y, const float* b, int64_t outer, int64_t channels, int64_t inner) {
  ST_LAUNCH("bias_add", kernels::bias_add(y, b, outer, channels, inner, stream_));
}

void CudaBackend::bias_grad(const float* dy, float* db, int64_t outer, int64_t channels, int64_t inner) {
  ST_LAUNCH("bias_grad", kernels::bias_grad(dy, db, outer, channels, inner, stream_));
}

void CudaBackend::swap_outer_axes(const float* x, float* y, int64_t a, int64_t b, int64_t inner) {
  ST_LAUNCH("swap_outer_axes", kernels::swap_outer_axes(x, y, a, b, inner, stream_));
}

// ------------------------------------------------------------------------ elementwise

void CudaBackend::activation_forward(Activation act, const float* x, float* y, int64_t n) {
  ST_LAUNCH("activation_forward", kernels::activation_forward(act, x, y, n, stream_));
}

void CudaBackend::activation_backward(Activation act, const float* x, const float* dy, float* dx, int64_t n) {
  ST_LAUNCH("activation_backward", kernels::activation_backward(act, x, dy, dx, n, stream_));
}

void CudaBackend::dropout(const float* x, float* y, int64_t n, float p, DropoutKey key) {
  ST_LAUNCH("dropout", kernels::dropout(x, y, n, p, key, stream_));
}

void CudaBackend::scale(float* x, int64_t n, float alpha) {
  ST_LAUNCH("scale", kernels::scale(x, n, alpha, stream_));
}

// ---------------------------------------------------------- convolution and pooling

void CudaBackend::im2col(const float* x, const ConvGeometry& g, int64_t batch, float* cols) {
  ST_LAUNCH("im2col", kernels::im2col(x, g, batch, cols, stream_));
}

void CudaBackend::col2im(const float* cols, const ConvGeometry& g, int64_t batch, float* dx) {
  ST_LAUNCH("col2im", kernels::col2im(cols, g, batch, dx, stream_));
}

void CudaBackend::maxpool2d_forward(const float* x, const PoolGeometry& g, float* y, int32_t* argmax) {
  ST_LAUNCH("maxpool2d_forward", kernels::maxpool2d_forward(x, g, y, argmax, stream_));
}

void CudaBackend::maxpool2d_backward(const float* dy, const int32_t* argmax, const PoolGeometry& g, float* dx) {
  ST_LAUNCH("maxpool2d_backward", kernels::maxpool2d_backward(dy, argmax, g, dx, stream_));
}

// ------------------------------------------------------------------------------ loss

void CudaBackend::softmax_xent_forward(const float* logits, int64_t ld, const int32_t* labels, int64_t n, int64_t c,
                                       float* stats, float* losses) {
  if (!check_row_stride("softmax_xent_forward", ld, c)) return;
  ST_LAUNCH("softmax_xent_forward",
            kernels::softmax_xent_forward(logits, ld, labels, n, c, stats, losses, stream_));
}

void CudaBackend::softmax_xent_backward(const float* logits, int64_t ld, const float* stats, const int32_t* labels,
                                        int64_t n, int64_t c, float scale, float* dlogits) {
  if (!check_row_stride("softmax_xent_backward", ld, c)) return;
  ST_LAUNCH("softmax_xent_backward",
            kernels::softmax_xent_backward(logits, ld, stats, labels, n, c, scale, dlogits, stream_));
}

// ------------------------------------------------------------ optimizers and buckets

void CudaBackend::sgd_step(float* p, const float* g, float* momentum_buf, int64_t n, const SgdParams& hp,
                           bool first_step) {
  ST_LAUNCH("sgd_step", kernels::sgd_step(p, g, momentum_buf, n, hp, first_step, stream_));
}

void CudaBackend::adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWParams& hp) {
  ST_LAUNCH("adamw_step", kernels::adamw_step(p, g, m, v, n, hp, stream_));
}

void CudaBackend::grad_bucket_pack(const GradSegment* segs, int count, float scale, float* flat) {
  ST_LAUNCH("grad_bucket_pack", kernels::grad_bucket_pack(segs, count, scale, flat, stream_));
}

void CudaBackend::grad_bucket_unpack(const float* flat, float scale, const GradSegment* segs, int count) {
  ST_LAUNCH("grad_bucket_unpack", kernels::grad_bucket_unpack(flat, scale, segs, count, stream_));
}

}  // namespace shardtrain

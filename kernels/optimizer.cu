// Fused SGD and AdamW steps over flat buffers.
//
// An optimizer step is pure bandwidth (a handful of flops per element), so each is one
// grid-stride pass that reads p, g and the state once and writes them once. The results
// must equal the CPU backend's (and through it PyTorch's), so the scalar coefficients are
// computed on the host by the same code as the CPU's (in double, rounded once to float),
// and each element goes through the same fp32 operations in the same order. The library
// is built with --fmad=false so that no a*b+c here is fused into one rounding where the
// CPU rounds twice; --prec-div and --prec-sqrt make / and sqrtf the IEEE-rounded
// operations the CPU uses.
#include "kernels/optimizer.h"

#include <cmath>

#include "kernels/kernel_util.cuh"

namespace shardtrain::kernels {

namespace {

__global__ void sgd_step_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ momentum_buf,
                                int64_t n, float neg_lr, float momentum, float wd, bool use_momentum,
                                bool first_step) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) {
    float d = wd != 0 ? g[i] + wd * p[i] : g[i];  // grad.add(param, alpha=wd)
    if (use_momentum) {
      // buf = clone(grad) on the first step, else buf.mul_(momentum).add_(grad)
      d = first_step ? d : momentum_buf[i] * momentum + d;
      momentum_buf[i] = d;
    }
    p[i] = p[i] + neg_lr * d;  // param.add_(grad, alpha=-lr)
  }
}

struct AdamWCoefficients {
  float decay, w1, b2, w2, neg_step_size, bias_correction2_sqrt, eps;
};

__global__ void adamw_step_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                                  float* __restrict__ v, int64_t n, AdamWCoefficients k) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_thread_count()) {
    const float gi = g[i];
    const float mi0 = m[i];
    const float pi = p[i] * k.decay;  // param.mul_(1 - lr * wd)
    // exp_avg.lerp_(grad, 1 - beta1), with ATen's two-sided lerp formula.
    const float mi = k.w1 < 0.5f ? mi0 + k.w1 * (gi - mi0) : gi - (gi - mi0) * (1.0f - k.w1);
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    const float vi = (v[i] * k.b2) + k.w2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    // denom = (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps); param.addcdiv_(exp_avg, denom, -step_size)
    const float denom = sqrtf(vi) / k.bias_correction2_sqrt + k.eps;
    p[i] = pi + k.neg_step_size * mi / denom;
  }
}

}  // namespace

cudaError_t sgd_step(float* p, const float* g, float* momentum_buf, int64_t n, const SgdParams& hp,
                     bool first_step, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const bool use_momentum = hp.momentum > 0 && momentum_buf != nullptr;
  sgd_step_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(p, g, momentum_buf, n, -hp.lr, hp.momentum,
                                                         hp.weight_decay, use_momentum, first_step);
  return cudaGetLastError();
}

cudaError_t adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWParams& hp,
                       cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  // The CPU backend's scalar precomputation, verbatim (host code, so the same bits).
  const double lr = hp.lr, beta1 = hp.beta1, beta2 = hp.beta2;
  const double step = static_cast<double>(hp.step);
  const double bias_correction1 = 1.0 - std::pow(beta1, step);
  const double bias_correction2 = 1.0 - std::pow(beta2, step);
  AdamWCoefficients k;
  k.decay = static_cast<float>(1.0 - lr * static_cast<double>(hp.weight_decay));
  k.w1 = static_cast<float>(1.0 - beta1);  // lerp weight
  k.b2 = hp.beta2;
  k.w2 = static_cast<float>(1.0 - beta2);
  k.neg_step_size = static_cast<float>(-(lr / bias_correction1));
  k.bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  k.eps = hp.eps;
  adamw_step_kernel<<<grid_1d(n), kBlockSize, 0, stream>>>(p, g, m, v, n, k);
  return cudaGetLastError();
}

}  // namespace shardtrain::kernels

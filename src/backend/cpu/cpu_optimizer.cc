// CPU optimizer steps: elementwise OpenMP loops (each element is independent, so results
// do not depend on the thread count). The arithmetic mirrors PyTorch's single-tensor
// (foreach=False) implementations operation by operation in fp32, with the Python-side
// scalars (1 - lr*wd, bias corrections, step size) computed in double and rounded to float
// once, as ATen does when a Python float meets a float32 tensor. That is what lets the
// PyTorch reference tests agree to ~1e-6 rather than to "roughly".
#include <cmath>

#include "backend/cpu/cpu_backend.h"

namespace shardtrain {

void CpuBackend::sgd_step(float* p, const float* g, float* momentum_buf, int64_t n, const SgdParams& hp,
                          bool first_step) {
  const float wd = hp.weight_decay;
  const float momentum = hp.momentum;
  const float neg_lr = -hp.lr;
  const bool use_momentum = momentum > 0 && momentum_buf != nullptr;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float d = wd != 0 ? g[i] + wd * p[i] : g[i];  // grad.add(param, alpha=wd)
    if (use_momentum) {
      // buf = clone(grad) on the first step, else buf.mul_(momentum).add_(grad)
      d = first_step ? d : momentum_buf[i] * momentum + d;
      momentum_buf[i] = d;
    }
    p[i] = p[i] + neg_lr * d;  // param.add_(grad, alpha=-lr)
  }
}

void CpuBackend::adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWParams& hp) {
  const double lr = hp.lr, beta1 = hp.beta1, beta2 = hp.beta2;
  const float decay = static_cast<float>(1.0 - lr * static_cast<double>(hp.weight_decay));
  const float w1 = static_cast<float>(1.0 - beta1);  // lerp weight
  const float b2 = hp.beta2;
  const float w2 = static_cast<float>(1.0 - beta2);
  const double step = static_cast<double>(hp.step);
  const double bias_correction1 = 1.0 - std::pow(beta1, step);
  const double bias_correction2 = 1.0 - std::pow(beta2, step);
  const float neg_step_size = static_cast<float>(-(lr / bias_correction1));
  const float bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const float eps = hp.eps;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float pi = p[i] * decay;  // param.mul_(1 - lr * wd)
    // exp_avg.lerp_(grad, 1 - beta1), with ATen's two-sided lerp formula.
    const float mi = w1 < 0.5f ? m[i] + w1 * (gi - m[i]) : gi - (gi - m[i]) * (1.0f - w1);
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    const float vi = (v[i] * b2) + w2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    // denom = (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps); param.addcdiv_(exp_avg, denom, -step_size)
    const float denom = std::sqrt(vi) / bias_correction2_sqrt + eps;
    p[i] = pi + neg_step_size * mi / denom;
  }
}

}  // namespace shardtrain

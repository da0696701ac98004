// Finite-difference gradient checks shared by the layer and loss tests.
//
// The scalar loss is L = sum(y * r) for fixed random weights r, so dL/dy = r and one
// backward call gives every analytic gradient. Each is compared with a central
// difference (L(v + eps) - L(v - eps)) / 2 eps, with L accumulated in double. In fp32,
// eps around 1e-2 keeps rounding noise (~1e-7 |L| / eps) far below the tolerance while
// the truncation error (~eps^2) stays small; callers keep inputs away from kinks
// (ReLU at 0, max-pool ties) by more than eps.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "layers/layer.h"
#include "test_random.h"

namespace shardtrain {
namespace testing {

struct GradCheckOptions {
  float eps = 1e-2f;
  double rtol = 1e-2;     // relative to max(|numeric|, |analytic|)
  double atol = 1e-3;     // floor for gradients that are ~0
  int max_checks = 64;    // elements checked per tensor (evenly spread when larger)
};

// One tensor whose gradient is checked: `value` is perturbed in place.
struct GradTarget {
  std::string name;
  float* value;
  std::vector<float> analytic;
};

// Compares every target's analytic gradient with central differences of `loss`.
inline void expect_gradients_match(const std::function<double()>& loss, std::vector<GradTarget>& targets,
                                   const GradCheckOptions& opt = {}) {
  for (GradTarget& t : targets) {
    const int64_t n = static_cast<int64_t>(t.analytic.size());
    const int64_t stride = std::max<int64_t>(1, n / opt.max_checks);
    for (int64_t i = 0; i < n; i += stride) {
      const float v0 = t.value[i];
      t.value[i] = v0 + opt.eps;
      const double lp = loss();
      t.value[i] = v0 - opt.eps;
      const double lm = loss();
      t.value[i] = v0;
      const double numeric = (lp - lm) / (2.0 * static_cast<double>(opt.eps));
      const double analytic = t.analytic[i];
      const double tol = opt.atol + opt.rtol * std::max(std::fabs(numeric), std::fabs(analytic));
      EXPECT_NEAR(analytic, numeric, tol) << t.name << "[" << i << "]";
    }
  }
}

// Configures `layer` for per-sample `sample_shape`, gives it random parameters, runs
// forward and backward on a [batch, sample_shape...] input (from `input`, or uniform in
// [-1, 1]) and checks the input gradient and every parameter gradient. Also checks that
// backward overwrites (not accumulates) parameter gradients and that param gradients do
// not depend on whether dx was requested.
inline void check_layer_gradients(Layer& layer, Backend& be, const Shape& sample_shape, int64_t batch,
                                  const ForwardContext& ctx, std::vector<float> input = {},
                                  const GradCheckOptions& opt = {}) {
  auto out = layer.configure(sample_shape);
  ASSERT_TRUE(out.ok()) << out.status().message();
  Shape in_shape{batch}, out_shape{batch};
  in_shape.insert(in_shape.end(), sample_shape.begin(), sample_shape.end());
  out_shape.insert(out_shape.end(), out->begin(), out->end());

  std::vector<Tensor> params, grads;
  uint32_t seed = 7;
  for (const ParamSpec& s : layer.param_specs()) {
    params.push_back(be.alloc(s.shape, DType::kFloat32));
    grads.push_back(be.alloc(s.shape, DType::kFloat32));
    auto init = random_uniform(params.back().numel(), -0.5f, 0.5f, seed++);
    be.copy_from_host(params.back(), init.data());
  }
  layer.bind(params, grads);

  Tensor x = be.alloc(in_shape, DType::kFloat32), y = be.alloc(out_shape, DType::kFloat32);
  if (input.empty()) input = random_uniform(x.numel(), -1.0f, 1.0f, 11);
  ASSERT_EQ(static_cast<int64_t>(input.size()), x.numel());
  be.copy_from_host(x, input.data());
  const std::vector<float> r = random_uniform(y.numel(), -1.0f, 1.0f, 13);

  auto loss = [&]() {
    layer.forward(ctx, x, y);
    std::vector<float> h(y.numel());
    be.copy_to_host(y, h.data());
    double l = 0.0;
    for (size_t i = 0; i < h.size(); ++i) l += static_cast<double>(h[i]) * r[i];
    return l;
  };
  loss();
  Tensor dy = be.alloc(out_shape, DType::kFloat32), dx = be.alloc(in_shape, DType::kFloat32);
  be.copy_from_host(dy, r.data());
  for (Tensor& g : grads) be.fill(g, 0.0f);
  layer.backward(ctx, x, y, dy, &dx);

  auto to_host = [&](const Tensor& t) {
    std::vector<float> h(t.numel());
    be.copy_to_host(t, h.data());
    return h;
  };
  std::vector<GradTarget> targets{{"dx", x.f32(), to_host(dx)}};
  for (size_t p = 0; p < params.size(); ++p) {
    targets.push_back({layer.param_specs()[p].name, params[p].f32(), to_host(grads[p])});
  }
  // Same parameter gradients without dx.
  for (Tensor& g : grads) be.fill(g, 0.0f);
  layer.backward(ctx, x, y, dy, nullptr);
  for (size_t p = 0; p < params.size(); ++p) EXPECT_EQ(to_host(grads[p]), targets[p + 1].analytic) << "dx=null";

  expect_gradients_match(loss, targets, opt);
}

}  // namespace testing
}  // namespace shardtrain

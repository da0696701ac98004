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
#include "model/param_store.h"
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

// One input of a layer under test: a float input (values, or uniform in [-1, 1] when
// empty) whose gradient is checked, or int32 ids (token ids, labels) that are not.
struct LayerInput {
  Shape sample_shape;
  std::vector<float> values;
  std::vector<int32_t> ids;  // non-empty: an int32 input
};

// Configures `layer` on `inputs` in `store` (which may already hold parameters other
// layers declared, e.g. a table a tied head uses), gives every parameter random values,
// runs forward and backward on `batch` samples and checks every float input's gradient
// and every parameter gradient against central differences of L = sum over outputs of
// sum(y * r). Also checks that parameter gradients accumulate (a second backward adds
// the same again) and do not depend on whether input gradients were requested.
inline void check_node_gradients_in(ParamStore& store, Layer& layer, Backend& be,
                                    const std::vector<LayerInput>& inputs, int64_t batch, const ForwardContext& ctx,
                                    const GradCheckOptions& opt = {}) {
  std::vector<ValueSpec> specs;
  for (const LayerInput& in : inputs)
    specs.push_back({in.sample_shape, in.ids.empty() ? DType::kFloat32 : DType::kInt32});
  auto out_specs = layer.configure(specs, store);
  ASSERT_TRUE(out_specs.ok()) << out_specs.status().message();
  store.allocate();
  {
    std::vector<float> init = random_uniform(store.num_params(), -0.5f, 0.5f, 7);
    be.copy_from_host(store.flat_params(), init.data());
  }
  auto with_batch = [&](const Shape& s) {
    Shape full{batch};
    full.insert(full.end(), s.begin(), s.end());
    return full;
  };
  std::vector<Tensor> xs, dxs;
  uint32_t seed = 11;
  for (const LayerInput& in : inputs) {
    const Shape shape = with_batch(in.sample_shape);
    if (!in.ids.empty()) {
      xs.push_back(be.alloc(shape, DType::kInt32));
      ASSERT_EQ(static_cast<int64_t>(in.ids.size()), xs.back().numel());
      be.copy_from_host(xs.back(), in.ids.data());
      dxs.push_back(Tensor());
      continue;
    }
    xs.push_back(be.alloc(shape, DType::kFloat32));
    std::vector<float> v = in.values.empty() ? random_uniform(xs.back().numel(), -1.0f, 1.0f, seed++) : in.values;
    ASSERT_EQ(static_cast<int64_t>(v.size()), xs.back().numel());
    be.copy_from_host(xs.back(), v.data());
    dxs.push_back(be.alloc(shape, DType::kFloat32));
  }
  std::vector<Tensor> ys, dys;
  std::vector<std::vector<float>> rs;
  for (const ValueSpec& o : *out_specs) {
    ys.push_back(be.alloc(with_batch(o.shape), o.dtype));
    rs.push_back(random_uniform(ys.back().numel(), -1.0f, 1.0f, seed++));
    dys.push_back(be.alloc(with_batch(o.shape), o.dtype));
    be.copy_from_host(dys.back(), rs.back().data());
  }
  auto to_host = [&](const Tensor& t) {
    std::vector<float> h(t.numel());
    be.copy_to_host(t, h.data());
    return h;
  };
  ConstTensors in, out, dout;
  MutTensors y, din, no_din;
  for (Tensor& x : xs) in.push_back(&x);
  for (Tensor& t : ys) {
    out.push_back(&t);
    y.push_back(&t);
  }
  for (Tensor& t : dys) dout.push_back(&t);
  for (Tensor& d : dxs) {
    din.push_back(d.defined() ? &d : nullptr);
    no_din.push_back(nullptr);
  }
  auto loss = [&]() {
    layer.forward(ctx, in, y);
    double l = 0.0;
    for (size_t o = 0; o < ys.size(); ++o) {
      std::vector<float> h = to_host(ys[o]);
      for (size_t i = 0; i < h.size(); ++i) l += static_cast<double>(h[i]) * rs[o][i];
    }
    return l;
  };
  loss();
  store.zero_grads();
  layer.backward(ctx, in, out, dout, din);

  std::vector<GradTarget> targets;
  for (size_t i = 0; i < xs.size(); ++i)
    if (dxs[i].defined()) targets.push_back({"d_input" + std::to_string(i), xs[i].f32(), to_host(dxs[i])});
  const std::vector<float> grads = to_host(store.flat_grads());
  for (const ParamInfo& p : store.params()) {
    Tensor v = store.flat_params().slice(p.offset, p.shape);
    targets.push_back({p.name, v.f32(),
                       std::vector<float>(grads.begin() + p.offset, grads.begin() + p.offset + shape_numel(p.shape))});
  }
  // Accumulation, and independence from input gradients: a second backward without them
  // adds the same gradients again.
  layer.backward(ctx, in, out, dout, no_din);
  const std::vector<float> twice = to_host(store.flat_grads());
  for (size_t i = 0; i < grads.size(); ++i)
    ASSERT_NEAR(twice[i], 2.0 * grads[i], 1e-6 * (1.0 + std::fabs(grads[i]))) << "parameter gradient " << i;
  expect_gradients_match(loss, targets, opt);
}

// As check_node_gradients_in, with a fresh store holding only the layer's parameters.
inline void check_node_gradients(Layer& layer, Backend& be, const std::vector<LayerInput>& inputs, int64_t batch,
                                 const ForwardContext& ctx, const GradCheckOptions& opt = {}) {
  ParamStore store(be);
  check_node_gradients_in(store, layer, be, inputs, batch, ctx, opt);
}

// A unary layer on a float input of per-sample `sample_shape`.
inline void check_layer_gradients(Layer& layer, Backend& be, const Shape& sample_shape, int64_t batch,
                                  const ForwardContext& ctx, std::vector<float> input = {},
                                  const GradCheckOptions& opt = {}) {
  check_node_gradients(layer, be, {LayerInput{sample_shape, std::move(input), {}}}, batch, ctx, opt);
}

}  // namespace testing
}  // namespace shardtrain

// Helpers shared by the model tests: models from config text, random parameters, and the
// whole-model finite-difference check.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "config/config.h"
#include "layers/grad_check.h"
#include "model/model.h"
#include "test_random.h"

namespace shardtrain {
namespace testing {

// The model part of a job config: `text` is what goes inside model { ... }.
inline config::ModelConfig parse_model(const std::string& text) {
  auto cfg = parse_config_text("model {" + text + "} train { steps: 1 }", "test");
  EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
  return cfg.ok() ? cfg->model() : config::ModelConfig();
}

// Every parameter uniform in [-scale, scale]: far larger than GPT-2's init, so gradients
// and logit differences are large enough for tight checks to mean something.
inline void randomize_params(Model& m, float scale, uint32_t seed) {
  std::vector<float> v = random_uniform(m.num_params(), -scale, scale, seed);
  m.backend().copy_from_host(m.flat_params(), v.data());
}

// forward_backward's gradients (ctx.grad_scale = 1/n: the gradient of the mean loss over
// every position) against central differences of evaluate's mean loss, loss_sum /
// predictions. Perturbs the CPU backend's flat parameters in place. Every parameter
// must get a gradient larger than the tolerance floor somewhere, or the check could not
// tell a missing contribution from a present one, except those named in `zero`
// (parameters the loss does not depend on), whose gradient must be exactly 0.
inline void check_model_gradients(Model& m, const std::vector<const void*>& data, int64_t n,
                                  const GradCheckOptions& opt, const std::vector<std::string>& zero = {}) {
  ForwardContext ctx;
  ctx.global_batch = n;
  ctx.grad_scale = 1.0f / static_cast<float>(n);
  m.forward_backward(ctx, data, n);
  std::vector<float> grads(m.num_params());
  m.backend().copy_to_host(m.flat_grads(), grads.data());
  auto loss = [&]() {
    const BatchResult r = m.evaluate(data, n);
    return r.loss_sum / static_cast<double>(r.predictions);
  };
  std::vector<GradTarget> targets;
  for (const ParamInfo& p : m.params()) {
    const int64_t numel = shape_numel(p.shape);
    std::vector<float> g(grads.begin() + p.offset, grads.begin() + p.offset + numel);
    float largest = 0;
    for (float v : g) largest = std::max(largest, std::fabs(v));
    if (std::find(zero.begin(), zero.end(), p.name) != zero.end())
      EXPECT_EQ(largest, 0.0f) << p.name << ": the loss does not depend on it";
    else
      EXPECT_GT(largest, 10 * opt.atol) << p.name << ": gradient too small to check";
    targets.push_back({p.name, m.flat_params().f32() + p.offset, std::move(g)});
  }
  expect_gradients_match(loss, targets, opt);
}

}  // namespace testing
}  // namespace shardtrain

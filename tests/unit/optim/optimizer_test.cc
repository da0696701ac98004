// Optimizer (SGD, AdamW) against the PyTorch update rules written out in double, gradient
// clipping, and the resume contract: a fresh optimizer given the saved state and
// steps_taken() continues bitwise identically.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "optim/optimizer.h"

namespace shardtrain {
namespace {

constexpr int64_t kP = 4;
const std::vector<float> kInitParams = {1.0f, -2.0f, 0.5f, 0.0f};

// Gradient for step t (different each step, with a zero and sign changes).
std::vector<float> grad_at(int64_t t) {
  return {0.1f * (t + 1), -0.2f, 0.3f * (t + 1) - 0.5f, t % 2 ? 0.0f : 1.5f};
}

std::vector<float> to_host(Backend& b, const Tensor& t) {
  std::vector<float> out(t.numel());
  b.copy_to_host(t, out.data());
  return out;
}

// Params/grads buffers and an optimizer over them.
struct Rig {
  CpuBackend backend{2};
  Tensor params = backend.alloc({kP}, DType::kFloat32);
  Tensor grads = backend.alloc({kP}, DType::kFloat32);
  std::unique_ptr<Optimizer> opt;

  explicit Rig(const config::OptimizerConfig& cfg, int64_t total_steps = 100) {
    backend.copy_from_host(params, kInitParams.data());
    auto made = Optimizer::create(cfg, total_steps, backend, params, grads);
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    opt = std::move(made).value();
  }
  void step(int64_t t) {
    const std::vector<float> g = grad_at(t);
    backend.copy_from_host(grads, g.data());
    opt->step(t);
  }
};

void expect_near_rel(const std::vector<float>& got, const std::vector<double>& want, double rel) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], rel * std::max(1e-3, std::abs(want[i]))) << "element " << i;
}

config::OptimizerConfig sgd(float lr, float momentum, float wd) {
  config::OptimizerConfig cfg;
  cfg.set_kind(config::OptimizerConfig::KIND_SGD);
  cfg.set_lr(lr);
  cfg.set_momentum(momentum);
  cfg.set_weight_decay(wd);
  return cfg;
}

config::OptimizerConfig adamw(float lr, float wd) {
  config::OptimizerConfig cfg;
  cfg.set_kind(config::OptimizerConfig::KIND_ADAMW);
  cfg.set_lr(lr);
  cfg.set_weight_decay(wd);
  return cfg;  // beta1 0.9, beta2 0.999, eps 1e-8 (defaults)
}

// torch.optim.SGD in double: d = g + wd p; buf = d (first) or mu buf + d; p -= lr buf.
std::vector<double> sgd_reference(const config::OptimizerConfig& cfg, int steps) {
  const double lr = cfg.lr(), mu = cfg.momentum(), wd = cfg.weight_decay();
  std::vector<double> p(kInitParams.begin(), kInitParams.end()), buf(kP, 0.0);
  for (int t = 0; t < steps; ++t) {
    const std::vector<float> g = grad_at(t);
    for (int i = 0; i < kP; ++i) {
      double d = g[i] + wd * p[i];
      if (mu > 0) d = buf[i] = t == 0 ? d : mu * buf[i] + d;
      p[i] -= lr * d;
    }
  }
  return p;
}

// torch.optim.AdamW in double, with bias correction at step t (1-based).
std::vector<double> adamw_reference(const config::OptimizerConfig& cfg, int steps) {
  const double lr = cfg.lr(), wd = cfg.weight_decay(), b1 = cfg.beta1(), b2 = cfg.beta2(), eps = cfg.eps();
  std::vector<double> p(kInitParams.begin(), kInitParams.end()), m(kP, 0.0), v(kP, 0.0);
  for (int t = 1; t <= steps; ++t) {
    const std::vector<float> g = grad_at(t - 1);
    for (int i = 0; i < kP; ++i) {
      p[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const double m_hat = m[i] / (1 - std::pow(b1, t));
      const double v_hat = v[i] / (1 - std::pow(b2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
  return p;
}

TEST(OptimSgd, PlainMatchesReferenceAndHasNoState) {
  const auto cfg = sgd(0.1f, 0.0f, 0.0f);
  Rig rig(cfg);
  EXPECT_STREQ(rig.opt->kind(), "sgd");
  EXPECT_TRUE(rig.opt->state().empty());
  for (int t = 0; t < 3; ++t) rig.step(t);
  EXPECT_EQ(rig.opt->steps_taken(), 3);
  expect_near_rel(to_host(rig.backend, rig.params), sgd_reference(cfg, 3), 1e-6);
}

TEST(OptimSgd, MomentumAndWeightDecayMatchReference) {
  const auto cfg = sgd(0.1f, 0.9f, 0.01f);
  Rig rig(cfg);
  ASSERT_EQ(rig.opt->state().size(), 1u);
  EXPECT_EQ(rig.opt->state()[0].first, "momentum_buffer");
  for (int t = 0; t < 3; ++t) {
    rig.step(t);
    expect_near_rel(to_host(rig.backend, rig.params), sgd_reference(cfg, t + 1), 1e-6);
  }
}

TEST(OptimSgd, WeightDecayWithoutMomentumMatchesReference) {
  const auto cfg = sgd(0.05f, 0.0f, 0.1f);
  Rig rig(cfg);
  for (int t = 0; t < 3; ++t) rig.step(t);
  expect_near_rel(to_host(rig.backend, rig.params), sgd_reference(cfg, 3), 1e-6);
}

TEST(OptimAdamW, MatchesReferenceOverThreeSteps) {
  const auto cfg = adamw(0.01f, 0.1f);
  Rig rig(cfg);
  EXPECT_STREQ(rig.opt->kind(), "adamw");
  ASSERT_EQ(rig.opt->state().size(), 2u);
  EXPECT_EQ(rig.opt->state()[0].first, "exp_avg");
  EXPECT_EQ(rig.opt->state()[1].first, "exp_avg_sq");
  for (int t = 0; t < 3; ++t) {
    rig.step(t);
    expect_near_rel(to_host(rig.backend, rig.params), adamw_reference(cfg, t + 1), 1e-6);
  }
}

TEST(OptimAdamW, StepUsesScheduledLr) {
  auto cfg = adamw(0.01f, 0.0f);
  cfg.mutable_schedule()->set_kind(config::ScheduleConfig::KIND_WARMUP_COSINE);
  cfg.mutable_schedule()->set_warmup_steps(4);
  Rig rig(cfg);
  const std::vector<float> g = grad_at(0);
  rig.backend.copy_from_host(rig.grads, g.data());
  EXPECT_FLOAT_EQ(rig.opt->step(0), 0.0025f);
  // First AdamW step moves each param with a nonzero grad by ~lr * sign(g).
  const std::vector<float> p = to_host(rig.backend, rig.params);
  EXPECT_NEAR(p[0], kInitParams[0] - 0.0025, 1e-6);
  EXPECT_NEAR(p[1], kInitParams[1] + 0.0025, 1e-6);
  EXPECT_NEAR(p[3], kInitParams[3] - 0.0025, 1e-6);
}

TEST(OptimCreate, RejectsMismatchedBuffers) {
  CpuBackend backend(1);
  Tensor params = backend.alloc({4}, DType::kFloat32);
  Tensor grads = backend.alloc({5}, DType::kFloat32);
  auto made = Optimizer::create(sgd(0.1f, 0.0f, 0.0f), 10, backend, params, grads);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(made.status().message().find("[4]"), std::string::npos) << made.status().message();
  auto ints = Optimizer::create(sgd(0.1f, 0.0f, 0.0f), 10, backend, params, backend.alloc({4}, DType::kInt32));
  EXPECT_FALSE(ints.ok());
}

TEST(OptimClip, ScalesOnlyAboveMaxNormAndReturnsNormBeforeClipping) {
  CpuBackend backend(1);
  Tensor grads = backend.alloc({2}, DType::kFloat32);
  const float g[2] = {3.0f, 4.0f};

  backend.copy_from_host(grads, g);
  EXPECT_DOUBLE_EQ(clip_grad_norm(backend, grads, 1.0f), 5.0);
  std::vector<float> clipped = to_host(backend, grads);
  EXPECT_NEAR(clipped[0], 3.0 / (5.0 + 1e-6), 1e-7);
  EXPECT_NEAR(clipped[1], 4.0 / (5.0 + 1e-6), 1e-7);
  EXPECT_NEAR(std::sqrt(backend.sum_squares(grads.f32(), 2)), 1.0, 1e-6);

  for (float max_norm : {10.0f, 5.0f, 0.0f}) {  // at or under the limit, or disabled
    backend.copy_from_host(grads, g);
    EXPECT_DOUBLE_EQ(clip_grad_norm(backend, grads, max_norm), 5.0);
    EXPECT_EQ(to_host(backend, grads), std::vector<float>(g, g + 2)) << max_norm;
  }
}

// 2 steps, then a fresh optimizer on copies of params and state with set_steps_taken(2)
// runs steps 2-3; it must equal 4 uninterrupted steps bit for bit.
void expect_resume_is_bitwise(const config::OptimizerConfig& cfg) {
  Rig straight(cfg);
  for (int t = 0; t < 4; ++t) straight.step(t);

  Rig first(cfg);
  for (int t = 0; t < 2; ++t) first.step(t);
  Rig resumed(cfg);
  resumed.backend.copy(first.params, resumed.params);
  ASSERT_EQ(resumed.opt->state().size(), first.opt->state().size());
  for (size_t i = 0; i < first.opt->state().size(); ++i) {
    ASSERT_EQ(resumed.opt->state()[i].first, first.opt->state()[i].first);
    resumed.backend.copy(first.opt->state()[i].second, resumed.opt->state()[i].second);
  }
  resumed.opt->set_steps_taken(first.opt->steps_taken());
  for (int t = 2; t < 4; ++t) resumed.step(t);

  const std::vector<float> want = to_host(straight.backend, straight.params);
  const std::vector<float> got = to_host(resumed.backend, resumed.params);
  EXPECT_EQ(std::memcmp(want.data(), got.data(), kP * sizeof(float)), 0);
  for (size_t i = 0; i < straight.opt->state().size(); ++i)
    EXPECT_EQ(to_host(straight.backend, straight.opt->state()[i].second),
              to_host(resumed.backend, resumed.opt->state()[i].second))
        << straight.opt->state()[i].first;
}

TEST(OptimResume, SgdMomentumContinuesBitwise) { expect_resume_is_bitwise(sgd(0.1f, 0.9f, 0.01f)); }
TEST(OptimResume, AdamWContinuesBitwise) { expect_resume_is_bitwise(adamw(0.01f, 0.1f)); }

TEST(OptimResume, StepsTakenZeroMeansFirstSgdStep) {
  // steps_taken() == 0 makes the step a "first" step (buf = g), which is why a resumed run
  // must restore it: otherwise the momentum history is thrown away.
  const auto cfg = sgd(0.1f, 0.9f, 0.0f);
  Rig straight(cfg);
  straight.step(0);
  straight.step(1);
  Rig forgetful(cfg);
  forgetful.step(0);
  forgetful.opt->set_steps_taken(0);
  forgetful.step(1);
  EXPECT_EQ(to_host(forgetful.backend, forgetful.opt->state()[0].second), grad_at(1));
  EXPECT_NE(to_host(straight.backend, straight.opt->state()[0].second), grad_at(1));
}

}  // namespace
}  // namespace shardtrain

// schedule_lr: warmup ramp, cosine midpoint and end, clamping past the end.
#include <gtest/gtest.h>

#include <cmath>

#include "optim/schedule.h"

namespace shardtrain {
namespace {

config::OptimizerConfig warmup_cosine(float lr, int64_t warmup, float min_lr) {
  config::OptimizerConfig cfg;
  cfg.set_lr(lr);
  cfg.mutable_schedule()->set_kind(config::ScheduleConfig::KIND_WARMUP_COSINE);
  cfg.mutable_schedule()->set_warmup_steps(warmup);
  cfg.mutable_schedule()->set_min_lr(min_lr);
  return cfg;
}

TEST(OptimSchedule, ConstantIsLrAtEveryStep) {
  config::OptimizerConfig cfg;
  cfg.set_lr(0.25f);
  for (int64_t step : {0, 1, 50, 99, 500}) EXPECT_EQ(schedule_lr(cfg, step, 100), 0.25f) << step;
}

TEST(OptimSchedule, WarmupCosine) {
  // 10 warmup steps, then a cosine over steps 10..110 (span 100) down to min_lr.
  const auto cfg = warmup_cosine(0.1f, 10, 0.01f);
  const int64_t total = 111;
  const double lr = 0.1f, min_lr = 0.01f;
  EXPECT_FLOAT_EQ(schedule_lr(cfg, 0, total), lr * 1 / 10);  // first step is not at lr 0
  EXPECT_FLOAT_EQ(schedule_lr(cfg, 4, total), lr * 5 / 10);
  EXPECT_FLOAT_EQ(schedule_lr(cfg, 9, total), lr);             // warmup ends at full lr
  EXPECT_FLOAT_EQ(schedule_lr(cfg, 10, total), lr);            // cosine starts at lr (t = 0)
  EXPECT_FLOAT_EQ(schedule_lr(cfg, 35, total), min_lr + 0.5 * (lr - min_lr) * (1 + std::cos(M_PI * 0.25)));
  EXPECT_FLOAT_EQ(schedule_lr(cfg, 60, total), (lr + min_lr) / 2);  // t = 0.5
  EXPECT_FLOAT_EQ(schedule_lr(cfg, 110, total), min_lr);             // last step
  EXPECT_FLOAT_EQ(schedule_lr(cfg, 200, total), min_lr);             // clamped past the end
}

TEST(OptimSchedule, WarmupCosineDegenerateLengths) {
  // No warmup, one step: span max(1, 0) = 1, so the only step runs at lr.
  EXPECT_FLOAT_EQ(schedule_lr(warmup_cosine(0.1f, 0, 0.0f), 0, 1), 0.1f);
  // All steps are warmup.
  EXPECT_FLOAT_EQ(schedule_lr(warmup_cosine(0.1f, 4, 0.0f), 3, 4), 0.1f);
  EXPECT_FLOAT_EQ(schedule_lr(warmup_cosine(0.1f, 4, 0.0f), 1, 4), 0.05f);
}

}  // namespace
}  // namespace shardtrain

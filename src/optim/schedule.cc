#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

namespace shardtrain {

float schedule_lr(const config::OptimizerConfig& cfg, int64_t step, int64_t total_steps) {
  const double lr = cfg.lr();
  const config::ScheduleConfig& s = cfg.schedule();
  switch (s.kind()) {
    case config::ScheduleConfig::KIND_CONSTANT:
      return static_cast<float>(lr);
    case config::ScheduleConfig::KIND_WARMUP_COSINE: {
      const int64_t warmup = s.warmup_steps();
      if (step < warmup) return static_cast<float>(lr * static_cast<double>(step + 1) / static_cast<double>(warmup));
      const double min_lr = s.min_lr();
      const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup - 1));
      const double t = std::clamp(static_cast<double>(step - warmup) / span, 0.0, 1.0);
      return static_cast<float>(min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * t)));
    }
  }
  return static_cast<float>(lr);  // unreachable for a validated config (enum is closed)
}

}  // namespace shardtrain

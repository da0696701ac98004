// Learning-rate schedules (config::ScheduleConfig), as a pure function of the step index so
// a resumed run gets the same lr as an uninterrupted one.
#pragma once

#include <cstdint>

#include "config/shardtrain.pb.h"

namespace shardtrain {

// The lr for the step with 0-based index `step` of a run of `total_steps` steps.
//   KIND_CONSTANT:      cfg.lr.
//   KIND_WARMUP_COSINE: step < warmup: lr * (step + 1) / warmup (so the first step is not
//                       wasted at lr 0); then min_lr + 0.5 (lr - min_lr)(1 + cos(pi t)) with
//                       t = (step - warmup) / max(1, total_steps - warmup - 1) clamped to
//                       [0, 1]: lr at the first post-warmup step, min_lr at the last step.
// Computed in double, returned as float. REQUIRES: a validated cfg, step >= 0.
float schedule_lr(const config::OptimizerConfig& cfg, int64_t step, int64_t total_steps);

}  // namespace shardtrain

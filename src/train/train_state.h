// Conversion between the live training state and a CheckpointData, the only place that
// knows how model, optimizer and loader state map onto the checkpoint layout:
//   /params/<param>              model parameters ("fc1.weight")
//   /optimizer/<state>/<param>   optimizer state per parameter ("exp_avg/fc1.weight")
// plus step, optimizer step count, data position, seed and the effective config.
#pragma once

#include <string>

#include "checkpoint/checkpoint.h"
#include "data/loader.h"
#include "model/model.h"
#include "optim/optimizer.h"

namespace shardtrain {

struct TrainProgress {
  int64_t step = 0;          // optimizer steps completed
  int64_t samples_seen = 0;  // global samples consumed
  LoaderPosition data;       // next training batch
};

// Copies device state to host.
CheckpointData checkpoint_capture(Model& model, Optimizer& opt, const TrainProgress& progress, uint64_t seed,
                                  int world_size, const std::string& config_text);

// Checks `ckpt` (read from `path`) against the model and optimizer — every tensor by name
// and shape, optimizer kind — then loads it. Nothing is modified when it fails.
StatusOr<TrainProgress> checkpoint_restore(const std::string& path, const CheckpointData& ckpt, Model& model,
                                           Optimizer* opt);

}  // namespace shardtrain

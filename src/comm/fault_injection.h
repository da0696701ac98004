// debug.fault (config/shardtrain.proto): makes one rank misbehave at one step on purpose,
// so tests can show that the watchdog (comm/watchdog.h) and comm.check_sequence catch it:
// ACTION_SLEEP stalls the rank, ACTION_SKIP_COLLECTIVE makes it skip the step's first
// collective. For tests only.
#pragma once

#include <cstdint>

#include "comm/watchdog.h"
#include "config/shardtrain.pb.h"
#include "core/status.h"

namespace shardtrain {

// InvalidArgument when the fault names a rank the job does not have (validate_config
// cannot know the world size).
Status fault_check_rank(const config::DebugConfig& debug, int world_size);

// Called by the trainer at the start of every step (numbered from 1, as the progress
// lines number it), before the step's first collective. Does nothing unless this rank and
// step are the fault's. ACTION_SLEEP blocks the calling thread for the fault's seconds.
void fault_inject_at_step(const config::DebugConfig& debug, int rank, int64_t step, Watchdog& watchdog);

}  // namespace shardtrain

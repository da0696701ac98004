#include "train/step_vote.h"

#include <algorithm>

namespace shardtrain {

void step_vote_add_stop(StepVote* vote, int signo, double age_s, int rank, int world_size) {
  vote->slot[StepVote::kSlotStopSignal] = std::max<int64_t>(vote->slot[StepVote::kSlotStopSignal], signo);
  vote->slot[StepVote::kSlotStopLowestRank] = world_size - rank;
  vote->slot[StepVote::kSlotStopHighestRank] = rank + 1;
  vote->slot[StepVote::kSlotStopAgeMs] = static_cast<int64_t>(std::max(0.0, age_s) * 1000);
}

StopRequest step_vote_stop(const StepVote& vote, int world_size) {
  StopRequest r;
  r.signo = static_cast<int>(vote.slot[StepVote::kSlotStopSignal]);
  if (r.signo == 0) return r;
  r.lowest_rank = world_size - static_cast<int>(vote.slot[StepVote::kSlotStopLowestRank]);
  r.highest_rank = static_cast<int>(vote.slot[StepVote::kSlotStopHighestRank]) - 1;
  r.age_s = static_cast<double>(vote.slot[StepVote::kSlotStopAgeMs]) * 1e-3;
  return r;
}

}  // namespace shardtrain

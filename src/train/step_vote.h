// The step vote: what ranks must decide together at every step boundary, in one small
// all-reduce (MAX over a few int64 slots) on the control communicator. No rank acts on a
// local event alone: a stop signal that reached one rank stops every rank after the same
// step, and the others are never left waiting in a collective.
//
// The vote travels in the per-step check's all-reduce (train/step_check.h:
// agree_step_check), taken after the step's gradients are summed and before its update,
// so it adds no collective of its own. A signal that arrives before that point of step s
// stops the job after step s.
//
// Each concern owns slots whose MAX means what it needs (0: nothing to report). To add a
// concern, add slots before kSlotCount and a pair of functions like the stop request's
// below; the collective stays one call of the same tiny size.
#pragma once

#include <cstdint>


namespace shardtrain {

struct StepVote {
  enum Slot : int {
    kSlotStopSignal = 0,     // the largest stop signal number any rank received
    kSlotStopLowestRank,     // world - (lowest rank that received one)
    kSlotStopHighestRank,    // 1 + (highest rank that received one)
    kSlotStopAgeMs,          // milliseconds since the earliest of those signals arrived
    kSlotCount,
  };
  int64_t slot[kSlotCount] = {};
};

// A stop request, as agreed.
struct StopRequest {
  int signo = 0;  // 0: no rank asked to stop
  int lowest_rank = -1, highest_rank = -1;
  double age_s = 0;  // since the earliest signal, at the time of the vote
};

// This rank's contribution: it received `signo` (> 0) `age_s` seconds ago.
void step_vote_add_stop(StepVote* vote, int signo, double age_s, int rank, int world_size);
// REQUIRES: `vote` was agreed.
StopRequest step_vote_stop(const StepVote& vote, int world_size);

}  // namespace shardtrain

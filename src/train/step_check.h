// The per-step agreement between ranks, taken after gradients are summed and before the
// optimizer update: is any rank's loss, or the global gradient norm, NaN or infinite?
//
// Why an agreement: the gradient norm is computed from the summed gradients and is the
// same on every rank, but the loss is each rank's own (its slice of the batch). Every
// rank must make the same decision (apply, skip or stop) or the replicas diverge or a
// rank leaves while others wait in a collective, so the ranks reduce what they saw.
//
// Cost: one all-reduce (MAX) of a few int64 values on the control communicator per step,
// which also carries the step's vote (train/step_vote.h: a stop request), so every
// per-step agreement is this one collective.
#pragma once

#include <cstdint>
#include <string>

#include "comm/communicator.h"
#include "train/step_vote.h"

namespace shardtrain {

enum class NonfiniteKind : int64_t { kFinite = 0, kNan = 1, kPosInf = 2, kNegInf = 3 };

NonfiniteKind nonfinite_kind(double v);
const char* nonfinite_name(NonfiniteKind k);  // "nan", "inf", "-inf"

struct StepCheck {
  int loss_rank = -1;                          // lowest rank whose loss is not finite; -1: none
  NonfiniteKind loss = NonfiniteKind::kFinite;  // that rank's loss
  NonfiniteKind grad_norm = NonfiniteKind::kFinite;

  bool finite() const { return loss_rank < 0 && grad_norm == NonfiniteKind::kFinite; }
  // "loss is nan on rank 1", "gradient norm is inf", or both joined by " and ".
  std::string describe() const;
};

// Collective: every rank passes its local loss (sum over its samples) and the global
// gradient norm, and every rank gets the same StepCheck. `vote` (optional) is this rank's
// contribution to the step vote and becomes the agreed vote, in the same all-reduce.
StatusOr<StepCheck> agree_step_check(Communicator& comm, double local_loss, double grad_norm,
                                     StepVote* vote = nullptr);

}  // namespace shardtrain

#include "train/step_check.h"

#include <cmath>

namespace shardtrain {
namespace {
constexpr int kStepCheckSlots = 2;  // [0] loss: (world - rank) * 4 + kind, 0 if finite; [1] grad norm kind
}  // namespace

NonfiniteKind nonfinite_kind(double v) {
  if (std::isnan(v)) return NonfiniteKind::kNan;
  if (std::isinf(v)) return v > 0 ? NonfiniteKind::kPosInf : NonfiniteKind::kNegInf;
  return NonfiniteKind::kFinite;
}

const char* nonfinite_name(NonfiniteKind k) {
  switch (k) {
    case NonfiniteKind::kNan: return "nan";
    case NonfiniteKind::kPosInf: return "inf";
    case NonfiniteKind::kNegInf: return "-inf";
    case NonfiniteKind::kFinite: break;
  }
  return "finite";
}

std::string StepCheck::describe() const {
  std::string out;
  if (loss_rank >= 0) out = std::string("loss is ") + nonfinite_name(loss) + " on rank " + std::to_string(loss_rank);
  if (grad_norm != NonfiniteKind::kFinite)
    out += (out.empty() ? "" : " and ") + std::string("gradient norm is ") + nonfinite_name(grad_norm);
  return out;
}

StatusOr<StepCheck> agree_step_check(Communicator& comm, double local_loss, double grad_norm, StepVote* vote) {
  const int64_t world = comm.world_size();
  const auto loss_kind = static_cast<int64_t>(nonfinite_kind(local_loss));
  // MAX over (world - rank) * 4 + kind picks the lowest rank with a non-finite loss.
  int64_t slots[kStepCheckSlots + StepVote::kSlotCount] = {loss_kind ? (world - comm.rank()) * 4 + loss_kind : 0,
                                                            static_cast<int64_t>(nonfinite_kind(grad_norm))};
  StepVote none;
  const StepVote& mine = vote ? *vote : none;
  for (int i = 0; i < StepVote::kSlotCount; ++i) slots[kStepCheckSlots + i] = mine.slot[i];
  RETURN_IF_ERROR(comm.all_reduce(slots, kStepCheckSlots + StepVote::kSlotCount, CommDType::kInt64, ReduceOp::kMax));
  if (vote)
    for (int i = 0; i < StepVote::kSlotCount; ++i) vote->slot[i] = slots[kStepCheckSlots + i];
  StepCheck c;
  if (slots[0] > 0) {
    c.loss_rank = static_cast<int>(world - slots[0] / 4);
    c.loss = static_cast<NonfiniteKind>(slots[0] % 4);
  }
  c.grad_norm = static_cast<NonfiniteKind>(slots[1]);
  return c;
}

}  // namespace shardtrain

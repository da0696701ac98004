#include "comm/communicator.h"

#include "comm/sequence_check.h"
#include "core/log.h"

namespace shardtrain {

size_t comm_dtype_size(CommDType t) {
  switch (t) {
    case CommDType::kFloat32: return 4;
    case CommDType::kFloat64: return 8;
    case CommDType::kInt64: return 8;
    case CommDType::kInt32: return 4;
    case CommDType::kUint8: return 1;
    case CommDType::kBFloat16: return 2;
  }
  return 0;
}

const char* comm_dtype_name(CommDType t) {
  switch (t) {
    case CommDType::kFloat32: return "float32";
    case CommDType::kFloat64: return "float64";
    case CommDType::kInt64: return "int64";
    case CommDType::kInt32: return "int32";
    case CommDType::kUint8: return "uint8";
    case CommDType::kBFloat16: return "bfloat16";
  }
  return "?";
}

namespace {

// What a skipped collective (fault injection) hands back: nothing ran, nothing to wait for.
class SkippedWork final : public CommWork {
 public:
  Status wait() override { return Status::Ok(); }
};

}  // namespace

Status Communicator::register_collective(const CollectiveDesc& d, Collective* c, bool* skipped) {
  Watchdog& wd = tracker_->watchdog();
  RETURN_IF_ERROR(wd.failure());  // the job is going down: start nothing new
  const std::string what = name() + " " + collective_op_name(d.op);
  if (d.count < 0) return Status::InvalidArgument(what + ": negative count " + std::to_string(d.count));
  if (d.op == CollectiveOp::kBroadcast && (d.root < 0 || d.root >= world_size()))
    return Status::InvalidArgument(what + ": root " + std::to_string(d.root) + " outside [0, " +
                                   std::to_string(world_size()) + ")");
  if (wd.take_skip()) {
    log_warn("debug.fault: rank " + std::to_string(rank()) + " skips " + collective_op_name(d.op) + " #" +
             std::to_string(tracker_->last_issued() + 1) + " of comm " + label() + " at step " +
             std::to_string(wd.step()));
    *skipped = true;
    return Status::Ok();
  }
  *c = tracker_->begin(d);
  if (SequenceCheck* check = wd.sequence_check()) RETURN_IF_ERROR(check->check(*c, *tracker_));
  return Status::Ok();
}

CommWorkPtr Communicator::skipped_work() { return std::make_unique<SkippedWork>(); }

}  // namespace shardtrain

#include "comm/agree.h"

#include <string>

namespace shardtrain {

Status agree_on_status(Communicator& comm, const Status& local) {
  // Lowest failing rank, found with a max over (world - rank) so that 0 means "none".
  int64_t mine = local.ok() ? 0 : comm.world_size() - comm.rank();
  RETURN_IF_ERROR(comm.all_reduce(&mine, 1, CommDType::kInt64, ReduceOp::kMax));
  if (mine == 0) return Status::Ok();
  const int root = comm.world_size() - static_cast<int>(mine);

  int64_t code = static_cast<int64_t>(local.code());
  RETURN_IF_ERROR(comm.broadcast(&code, 1, CommDType::kInt64, root));
  std::string message = local.message();
  RETURN_IF_ERROR(broadcast_string(comm, &message, root));

  switch (static_cast<StatusCode>(code)) {
    case StatusCode::kInvalidArgument: return Status::InvalidArgument(message);
    case StatusCode::kNotFound: return Status::NotFound(message);
    case StatusCode::kDataLoss: return Status::DataLoss(message);
    case StatusCode::kFailedPrecondition: return Status::FailedPrecondition(message);
    case StatusCode::kUnavailable: return Status::Unavailable(message);
    case StatusCode::kDeadlineExceeded: return Status::DeadlineExceeded(message);
    case StatusCode::kNonFinite: return Status::NonFinite(message);
    default: return Status::Internal(message);
  }
}

Status broadcast_string(Communicator& comm, std::string* text, int root) {
  int64_t size = static_cast<int64_t>(text->size());
  RETURN_IF_ERROR(comm.broadcast(&size, 1, CommDType::kInt64, root));
  text->resize(size);
  return comm.broadcast(text->data(), size, CommDType::kUint8, root);
}

}  // namespace shardtrain

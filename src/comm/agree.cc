#include "comm/agree.h"

#include <string>

namespace shardtrain {

Status agree_on_status(Communicator& comm, const Status& local) {
  // Lowest failing rank, found with a max over (world - rank) so that 0 means "none".
  int64_t mine = local.ok() ? 0 : comm.world_size() - comm.rank();
  RETURN_IF_ERROR(comm.all_reduce(&mine, 1, CommDType::kInt64, ReduceOp::kMax));
  if (mine == 0) return Status::Ok();
  const int root = comm.world_size() - static_cast<int>(mine);

  // Root sends code and message; message length first.
  int64_t header[2] = {static_cast<int64_t>(local.code()), static_cast<int64_t>(local.message().size())};
  RETURN_IF_ERROR(comm.broadcast(header, 2, CommDType::kInt64, root));
  std::string message(header[1], '\0');
  if (comm.rank() == root) message = local.message();
  RETURN_IF_ERROR(comm.broadcast(message.data(), header[1], CommDType::kUint8, root));

  switch (static_cast<StatusCode>(header[0])) {
    case StatusCode::kInvalidArgument: return Status::InvalidArgument(message);
    case StatusCode::kNotFound: return Status::NotFound(message);
    case StatusCode::kDataLoss: return Status::DataLoss(message);
    case StatusCode::kFailedPrecondition: return Status::FailedPrecondition(message);
    case StatusCode::kUnavailable: return Status::Unavailable(message);
    default: return Status::Internal(message);
  }
}

}  // namespace shardtrain

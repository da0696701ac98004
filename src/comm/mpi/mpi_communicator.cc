#include "comm/mpi/mpi_communicator.h"

#include <climits>

#include "core/check.h"

namespace shardtrain {
namespace {

MPI_Datatype to_mpi(CommDType t) {
  switch (t) {
    case CommDType::kFloat32: return MPI_FLOAT;
    case CommDType::kFloat64: return MPI_DOUBLE;
    case CommDType::kInt64: return MPI_INT64_T;
    case CommDType::kInt32: return MPI_INT32_T;
    case CommDType::kUint8: return MPI_UINT8_T;
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op to_mpi(ReduceOp op) { return op == ReduceOp::kSum ? MPI_SUM : MPI_MAX; }

// MPI counts are int; larger buffers would need chunking, which no model here needs yet.
Status check_count(int64_t count, const char* what) {
  if (count < 0 || count > INT_MAX)
    return Status::InvalidArgument(std::string(what) + ": count " + std::to_string(count) +
                                   " outside MPI's int range");
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<MpiCommunicator>> MpiCommunicator::create(MPI_Comm comm) {
  int rank = 0, size = 0;
  auto init = [&]() -> Status {
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    MPI_CHECK(MPI_Comm_size(comm, &size));
    // Errors come back as return codes (checked) instead of aborting inside MPI.
    MPI_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
    return Status::Ok();
  };
  RETURN_IF_ERROR(init());
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(comm, rank, size));
}

Status MpiCommunicator::all_reduce(void* buf, int64_t count, CommDType dtype, ReduceOp op) {
  RETURN_IF_ERROR(check_count(count, "all_reduce"));
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, static_cast<int>(count), to_mpi(dtype), to_mpi(op), comm_));
  return Status::Ok();
}

Status MpiCommunicator::broadcast(void* buf, int64_t count, CommDType dtype, int root) {
  RETURN_IF_ERROR(check_count(count, "broadcast"));
  MPI_CHECK(MPI_Bcast(buf, static_cast<int>(count), to_mpi(dtype), root, comm_));
  return Status::Ok();
}

Status MpiCommunicator::all_gather(const void* send, void* recv, int64_t count, CommDType dtype) {
  RETURN_IF_ERROR(check_count(count, "all_gather"));
  MPI_CHECK(MPI_Allgather(send, static_cast<int>(count), to_mpi(dtype), recv, static_cast<int>(count),
                          to_mpi(dtype), comm_));
  return Status::Ok();
}

Status MpiCommunicator::reduce_scatter(const void* send, void* recv, int64_t count, CommDType dtype,
                                       ReduceOp op) {
  RETURN_IF_ERROR(check_count(count, "reduce_scatter"));
  MPI_CHECK(MPI_Reduce_scatter_block(send, recv, static_cast<int>(count), to_mpi(dtype), to_mpi(op), comm_));
  return Status::Ok();
}

Status MpiCommunicator::barrier() {
  MPI_CHECK(MPI_Barrier(comm_));
  return Status::Ok();
}

void MpiCommunicator::abort(int exit_code) {
  MPI_Abort(comm_, exit_code);
  std::_Exit(exit_code);  // MPI_Abort should not return; make sure of it.
}

}  // namespace shardtrain

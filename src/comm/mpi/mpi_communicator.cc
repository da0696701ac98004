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
    case CommDType::kBFloat16: return MPI_DATATYPE_NULL;  // never issued: supports_bf16() is false
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
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(comm, rank, size, /*owned=*/false));
}

StatusOr<std::unique_ptr<MpiCommunicator>> MpiCommunicator::create_dup(MPI_Comm comm) {
  MPI_Comm dup = MPI_COMM_NULL;
  const int rc = MPI_Comm_dup(comm, &dup);
  if (rc != MPI_SUCCESS) return Status::Internal("MPI_Comm_dup failed: " + mpi_error_string(rc));
  auto wrapped = create(dup);
  if (!wrapped.ok()) {
    MPI_Comm_free(&dup);  // best effort: the error above is the one to report
    return wrapped.status();
  }
  wrapped.value()->owned_ = true;
  return wrapped;
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  // A destructor cannot report a failure, and freeing only returns resources.
  if (owned_ && !finalized) MPI_Comm_free(&comm_);  // MPI_Comm_dup'ed by create_dup
}

namespace {

// One non-blocking MPI collective. `what` names it in errors.
class MpiWork final : public CommWork {
 public:
  explicit MpiWork(const char* what) : what_(what) {}
  ~MpiWork() override {
    if (request_ != MPI_REQUEST_NULL) (void)wait();
  }
  MPI_Request* request() { return &request_; }
  Status wait() override {
    if (request_ == MPI_REQUEST_NULL) return Status::Ok();  // already waited
    const int rc = MPI_Wait(&request_, MPI_STATUS_IGNORE);
    request_ = MPI_REQUEST_NULL;
    if (rc != MPI_SUCCESS)
      return Status::Internal(std::string("MPI ") + what_ + " failed: " + mpi_error_string(rc));
    return Status::Ok();
  }

 private:
  const char* what_;
  MPI_Request request_ = MPI_REQUEST_NULL;
};

// Starts `start(request)`; a failure to start is reported with the collective's name.
template <typename Start>
StatusOr<CommWorkPtr> issue(const char* what, int64_t count, Start start) {
  RETURN_IF_ERROR(check_count(count, what));
  auto work = std::make_unique<MpiWork>(what);
  const int rc = start(work->request());
  if (rc != MPI_SUCCESS) {
    *work->request() = MPI_REQUEST_NULL;
    return Status::Internal(std::string("MPI ") + what + " failed to start: " + mpi_error_string(rc));
  }
  return CommWorkPtr(std::move(work));
}

}  // namespace

StatusOr<CommWorkPtr> MpiCommunicator::all_reduce_async(void* buf, int64_t count, CommDType dtype, ReduceOp op) {
  return issue("all_reduce", count, [&](MPI_Request* r) {
    return MPI_Iallreduce(MPI_IN_PLACE, buf, static_cast<int>(count), to_mpi(dtype), to_mpi(op), comm_, r);
  });
}

StatusOr<CommWorkPtr> MpiCommunicator::broadcast_async(void* buf, int64_t count, CommDType dtype, int root) {
  return issue("broadcast", count, [&](MPI_Request* r) {
    return MPI_Ibcast(buf, static_cast<int>(count), to_mpi(dtype), root, comm_, r);
  });
}

StatusOr<CommWorkPtr> MpiCommunicator::all_gather_async(const void* send, void* recv, int64_t count,
                                                        CommDType dtype) {
  return issue("all_gather", count, [&](MPI_Request* r) {
    return MPI_Iallgather(send, static_cast<int>(count), to_mpi(dtype), recv, static_cast<int>(count),
                          to_mpi(dtype), comm_, r);
  });
}

StatusOr<CommWorkPtr> MpiCommunicator::reduce_scatter_async(const void* send, void* recv, int64_t count,
                                                            CommDType dtype, ReduceOp op) {
  return issue("reduce_scatter", count, [&](MPI_Request* r) {
    return MPI_Ireduce_scatter_block(send, recv, static_cast<int>(count), to_mpi(dtype), to_mpi(op), comm_, r);
  });
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

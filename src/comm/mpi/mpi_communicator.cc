#include "comm/mpi/mpi_communicator.h"

#include <climits>
#include <optional>

#include "comm/mpi/mpi_wait.h"
#include "comm/progress_board.h"
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

StatusOr<std::unique_ptr<MpiCommunicator>> MpiCommunicator::create(MPI_Comm comm, std::shared_ptr<Watchdog> watchdog,
                                                                   std::string label) {
  int rank = 0, size = 0;
  auto init = [&]() -> Status {
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    MPI_CHECK(MPI_Comm_size(comm, &size));
    // Errors come back as return codes (checked) instead of aborting inside MPI.
    MPI_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
    return Status::Ok();
  };
  RETURN_IF_ERROR(init());
  ASSIGN_OR_RETURN(auto board, ProgressBoard::create(comm));
  if (watchdog == nullptr) watchdog = std::make_shared<Watchdog>();
  auto tracker = std::make_shared<CollectiveTracker>(std::move(watchdog), std::move(label), rank, size, std::move(board));
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(std::move(tracker), comm, rank, size, /*owned=*/false));
}

StatusOr<std::unique_ptr<MpiCommunicator>> MpiCommunicator::create_dup(MPI_Comm comm,
                                                                       std::shared_ptr<Watchdog> watchdog,
                                                                       std::string label) {
  MPI_Comm dup = MPI_COMM_NULL;
  const int rc = MPI_Comm_dup(comm, &dup);
  if (rc != MPI_SUCCESS) return Status::Internal("MPI_Comm_dup failed: " + mpi_error_string(rc));
  auto wrapped = create(dup, std::move(watchdog), std::move(label));
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

// One non-blocking MPI collective, waited for under the watchdog.
class MpiWork final : public CommWork {
 public:
  MpiWork(std::shared_ptr<CollectiveTracker> tracker, const Collective& c) : tracker_(std::move(tracker)), c_(c) {}
  // A wait that failed is not retried: the collective may never finish, and the job is
  // going down (the failure stopped all new work).
  ~MpiWork() override {
    if (!result_) (void)wait();
  }
  MPI_Request* request() { return &request_; }
  // For a collective that failed to start: nothing to wait for.
  void set_failed(const Status& why) { result_ = why; }
  Status wait() override {
    if (!result_) {
      Status st = mpi_wait_watched(&request_, c_, *tracker_);
      if (st.ok()) tracker_->complete(c_);
      result_ = std::move(st);
    }
    return *result_;
  }

 private:
  std::shared_ptr<CollectiveTracker> tracker_;
  Collective c_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  std::optional<Status> result_;  // set once waited
};

// Starts `start(request)` for registered collective `c`; a failure to start is reported
// with the collective's name.
template <typename Start>
StatusOr<CommWorkPtr> issue(const std::shared_ptr<CollectiveTracker>& tracker, const Collective& c, Start start) {
  const char* what = collective_op_name(c.desc.op);
  RETURN_IF_ERROR(check_count(c.desc.count, what));
  auto work = std::make_unique<MpiWork>(tracker, c);
  const int rc = start(work->request());
  if (rc != MPI_SUCCESS) {
    const Status failed = Status::Internal("MPI " + collective_text(c, tracker->label()) + " failed to start: " +
                                           mpi_error_string(rc));
    work->set_failed(failed);
    return failed;
  }
  return CommWorkPtr(std::move(work));
}

}  // namespace

StatusOr<CommWorkPtr> MpiCommunicator::start_all_reduce(const Collective& c, void* buf, int64_t count,
                                                        CommDType dtype, ReduceOp op) {
  return issue(tracker_ptr(), c, [&](MPI_Request* r) {
    return MPI_Iallreduce(MPI_IN_PLACE, buf, static_cast<int>(count), to_mpi(dtype), to_mpi(op), comm_, r);
  });
}

StatusOr<CommWorkPtr> MpiCommunicator::start_broadcast(const Collective& c, void* buf, int64_t count,
                                                       CommDType dtype, int root) {
  return issue(tracker_ptr(), c, [&](MPI_Request* r) {
    return MPI_Ibcast(buf, static_cast<int>(count), to_mpi(dtype), root, comm_, r);
  });
}

StatusOr<CommWorkPtr> MpiCommunicator::start_all_gather(const Collective& c, const void* send, void* recv,
                                                        int64_t count, CommDType dtype) {
  return issue(tracker_ptr(), c, [&](MPI_Request* r) {
    return MPI_Iallgather(send, static_cast<int>(count), to_mpi(dtype), recv, static_cast<int>(count),
                          to_mpi(dtype), comm_, r);
  });
}

StatusOr<CommWorkPtr> MpiCommunicator::start_reduce_scatter(const Collective& c, const void* send, void* recv,
                                                            int64_t count, CommDType dtype, ReduceOp op) {
  return issue(tracker_ptr(), c, [&](MPI_Request* r) {
    return MPI_Ireduce_scatter_block(send, recv, static_cast<int>(count), to_mpi(dtype), to_mpi(op), comm_, r);
  });
}

StatusOr<CommWorkPtr> MpiCommunicator::start_barrier(const Collective& c) {
  return issue(tracker_ptr(), c, [&](MPI_Request* r) { return MPI_Ibarrier(comm_, r); });
}

void MpiCommunicator::abort(int exit_code) {
  MPI_Abort(comm_, exit_code);
  std::_Exit(exit_code);  // MPI_Abort should not return; make sure of it.
}

}  // namespace shardtrain

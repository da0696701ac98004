#include "comm/sequence_check.h"

#include <cstring>

#include "comm/mpi/mpi_wait.h"
#include "core/check.h"

namespace shardtrain {

SequenceRecord sequence_record(const Collective& c, const std::string& comm) {
  SequenceRecord r;
  std::memset(&r, 0, sizeof r);  // padding too: records are compared as bytes
  std::strncpy(r.comm, comm.c_str(), sizeof r.comm - 1);
  r.seq = c.seq;
  r.op = static_cast<int64_t>(c.desc.op);
  r.count = c.desc.count;
  r.dtype = static_cast<int64_t>(c.desc.dtype);
  r.root = c.desc.root;
  r.step = c.step;
  return r;
}

int sequence_first_mismatch(const std::vector<SequenceRecord>& records) {
  for (size_t r = 1; r < records.size(); ++r)
    if (std::memcmp(&records[r], &records[0], sizeof(SequenceRecord)) != 0) return static_cast<int>(r);
  return -1;
}

namespace {

// "all_reduce #12 of 100 float32 (step 5, comm grad)"
std::string record_text(const SequenceRecord& r) {
  const auto op = static_cast<CollectiveOp>(r.op);
  std::string text = std::string(collective_op_name(op)) + " #" + std::to_string(r.seq);
  if (op != CollectiveOp::kBarrier)
    text += " of " + std::to_string(r.count) + " " + comm_dtype_name(static_cast<CommDType>(r.dtype));
  if (op == CollectiveOp::kBroadcast) text += " from root " + std::to_string(r.root);
  return text + " (step " + std::to_string(r.step) + ", comm " + std::string(r.comm, strnlen(r.comm, sizeof r.comm)) +
         ")";
}

}  // namespace

std::string sequence_mismatch_text(const std::vector<SequenceRecord>& records, int r) {
  return "rank 0 issued " + record_text(records[0]) + ", rank " + std::to_string(r) + " issued " +
         record_text(records[r]);
}

StatusOr<std::unique_ptr<SequenceCheck>> SequenceCheck::create(MPI_Comm comm) {
  MPI_Comm dup = MPI_COMM_NULL;
  MPI_CHECK(MPI_Comm_dup(comm, &dup));
  int rank = 0, size = 0;
  auto init = [&]() -> Status {
    MPI_CHECK(MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(dup, &rank));
    MPI_CHECK(MPI_Comm_size(dup, &size));
    return Status::Ok();
  };
  const Status st = init();
  if (!st.ok()) {
    MPI_Comm_free(&dup);  // best effort: st is the error to report
    return st;
  }
  return std::unique_ptr<SequenceCheck>(new SequenceCheck(dup, rank, size));
}

SequenceCheck::~SequenceCheck() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm_);  // only returns resources
}

Status SequenceCheck::check(const Collective& c, CollectiveTracker& tracker) {
  if (tracker.world_size() != size_ || tracker.rank() != rank_)
    return Status::Internal("comm.check_sequence: communicator " + tracker.label() + " (rank " +
                            std::to_string(tracker.rank()) + " of " + std::to_string(tracker.world_size()) +
                            ") does not span the check's ranks (rank " + std::to_string(rank_) + " of " +
                            std::to_string(size_) + ")");
  struct Buffers {
    SequenceRecord mine;
    std::vector<SequenceRecord> all;
  };
  auto bufs = std::make_unique<Buffers>(Buffers{sequence_record(c, tracker.label()), {}});
  bufs->all.resize(size_);
  MPI_Request request = MPI_REQUEST_NULL;
  MPI_CHECK(MPI_Iallgather(&bufs->mine, sizeof(SequenceRecord), MPI_BYTE, bufs->all.data(), sizeof(SequenceRecord),
                           MPI_BYTE, comm_, &request));
  const Status waited = mpi_wait_watched(&request, c, tracker);
  if (!waited.ok()) {
    // The gather is still active and MPI may yet touch its buffers: they stay allocated
    // for the short rest of the job, which is going down.
    (void)bufs.release();
    return waited;
  }
  const int r = sequence_first_mismatch(bufs->all);
  if (r < 0) return Status::Ok();
  return tracker.watchdog().fail(
      Status::FailedPrecondition("comm.check_sequence: ranks issued different collectives: " +
                                 sequence_mismatch_text(bufs->all, r)),
      /*agreed=*/true);
}

}  // namespace shardtrain

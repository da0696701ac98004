// comm.check_sequence: a debug mode that verifies every rank issues the same collectives.
//
// Before each collective, every rank's description of it (communicator, sequence number,
// operation, element count and type, root, step) is all-gathered over a private MPI
// communicator and compared with rank 0's. The first rank that differs is reported with
// both values:
//
//   rank 0 issued all_reduce #12 of 100 float32 (step 5, comm grad), rank 1 issued
//   broadcast #12 of 4 int64 (step 5, comm control)
//
// Every rank took part in the gather and holds the same table, so every rank finds the
// same mismatch before any mismatched collective starts: the failure is recorded as
// agreed (Watchdog::failure_agreed) and the job ends cleanly on every rank, where a real
// mismatch would hang or silently mix buffers. One check serves all the communicators of
// a job, so a rank that skips a collective on one communicator and issues its next one on
// another is caught too. Costs one small blocking all-gather per collective.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/watchdog.h"
#include "core/status.h"

namespace shardtrain {

// What one rank issued. Plain bytes: all-gathered as such.
struct SequenceRecord {
  char comm[16];  // the communicator's label, NUL-padded (cut at 15 bytes)
  int64_t seq, op, count, dtype, root, step;
};

SequenceRecord sequence_record(const Collective& c, const std::string& comm);
// The first rank whose record differs from rank 0's; -1 when all agree.
int sequence_first_mismatch(const std::vector<SequenceRecord>& records);
// "rank 0 issued ..., rank R issued ..." (see above).
std::string sequence_mismatch_text(const std::vector<SequenceRecord>& records, int r);

class SequenceCheck {
 public:
  // Collective over `comm`: the check gathers over a private duplicate of it.
  static StatusOr<std::unique_ptr<SequenceCheck>> create(MPI_Comm comm);
  ~SequenceCheck();

  // Gathers and compares `c`'s record, waiting as for a collective (until c.issued plus
  // the timeout). A mismatch is recorded on the watchdog as an agreed failure and
  // returned (kFailedPrecondition). Thread: the one that issues MPI calls.
  Status check(const Collective& c, CollectiveTracker& tracker);

 private:
  SequenceCheck(MPI_Comm comm, int rank, int size) : comm_(comm), rank_(rank), size_(size) {}
  MPI_Comm comm_;
  int rank_, size_;
};

}  // namespace shardtrain

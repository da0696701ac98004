// The MPI process lifetime and the exit policy of subcommands that run under mpirun.
//
// Two ways to fail, and both end every rank with a non-zero code and no hang:
//   report_agreed(): every rank holds the same error (setup errors after agree_on_status,
//                    usage errors): rank 0 prints the one line and every rank returns the
//                    same code up to main, destroying everything on the way (the data
//                    loader's prefetch thread must be joined before HDF5 and MPI shut down);
//   exit_local():    the error is this rank's alone (others may be inside a collective):
//                    print it with the rank and MPI_Abort the whole job.
// A collective timeout (kDeadlineExceeded, from the watchdog: comm/watchdog.h) is always
// local, even where report_agreed() is called: the stuck rank cannot agree on anything,
// so the rank that waited prints the watchdog's one line and aborts with kExitCommTimeout.
// The runtime's destructor calls MPI_Finalize, so it must outlive every other object.
#pragma once

#include <memory>

#include "comm/mpi/mpi_communicator.h"
#include "comm/mpi/topology.h"

namespace shardtrain {

inline constexpr int kExitUsage = 2;  // bad flags or config
inline constexpr int kExitFailure = 1;
// A stop signal (train.stop_signals, SIGINT) ended training early, after every rank saved
// the same step: run again with --resume auto to continue. sysexits.h's EX_TEMPFAIL, the
// code slurm.conf's RequeueExit names in cluster/ (a second SIGINT exits 130 instead).
inline constexpr int kExitPreempted = 75;
// A collective did not complete within comm.timeout_s (a rank is stuck, stopped or gone):
// the waiting rank printed which one and aborted the job. Retrying (a Slurm requeue) may
// help, unlike kExitFailure. 76 is sysexits.h's EX_PROTOCOL ("remote error in protocol").
inline constexpr int kExitCommTimeout = 76;

// Training diverged: a non-finite loss or gradient norm (train.on_nonfinite) or a
// non-finite parameter at a save. Nothing non-finite was checkpointed; requeueing would
// only diverge again, so job scripts should not retry on this code.
inline constexpr int kExitNonFinite = 3;

// kExitUsage for InvalidArgument, kExitNonFinite for NonFinite, kExitCommTimeout for
// DeadlineExceeded, kExitFailure otherwise.
int exit_code_for(const Status& s);

class MpiRuntime {
 public:
  // MPI_Init_thread(FUNNELED): only the main thread calls MPI (the data loader's
  // prefetch thread does HDF5 reads only). Returns a runtime or prints and exits.
  static std::unique_ptr<MpiRuntime> init_or_exit(int* argc, char*** argv);
  ~MpiRuntime();

  const Topology& topology() const { return topo_; }
  // MPI over host buffers: agreement, metrics, and CPU ranks' gradients.
  MpiCommunicator& comm() { return *comm_; }
  bool is_root() const { return topo_.rank == 0; }

  // Prints `s` once (rank 0) and returns `code` for the caller to return.
  int report_agreed(const Status& s, int code);
  [[noreturn]] void exit_local(const Status& s, int code);

  // Runs a subcommand body. Running out of host or GPU memory surfaces as std::bad_alloc
  // from Backend::alloc (activations, scratch) on one rank: that rank prints one line and
  // takes the job down, after the body's objects were destroyed by the unwinding.
  int run(int (*body)(MpiRuntime&, int, char**), int argc, char** argv);

 private:
  MpiRuntime() = default;
  Topology topo_;
  std::unique_ptr<MpiCommunicator> comm_;
};

}  // namespace shardtrain

#include "cli/runtime.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <new>

#include "core/log.h"

namespace shardtrain {

int exit_code_for(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument: return kExitUsage;
    case StatusCode::kNonFinite: return kExitNonFinite;
    case StatusCode::kDeadlineExceeded: return kExitCommTimeout;
    default: return kExitFailure;
  }
}

std::unique_ptr<MpiRuntime> MpiRuntime::init_or_exit(int* argc, char*** argv) {
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "error: MPI_Init_thread failed\n");
    std::exit(kExitFailure);
  }
  if (provided < MPI_THREAD_FUNNELED) {  // the loader's thread exists; MPI must tolerate it
    std::fprintf(stderr, "error: this MPI provides thread level %d, shardtrain needs MPI_THREAD_FUNNELED\n", provided);
    MPI_Abort(MPI_COMM_WORLD, kExitFailure);
  }
  std::unique_ptr<MpiRuntime> rt(new MpiRuntime());
  auto topo = discover_topology(MPI_COMM_WORLD);
  // The job's watchdog starts with comm.timeout_s's default; commands apply the config's
  // comm settings once it is read (configure_watchdog).
  auto comm = MpiCommunicator::create(MPI_COMM_WORLD, std::make_shared<Watchdog>(), "control");
  if (!topo.ok() || !comm.ok()) {
    log_error(!topo.ok() ? topo.status().message() : comm.status().message());
    MPI_Abort(MPI_COMM_WORLD, kExitFailure);
  }
  rt->topo_ = topo.value();
  rt->comm_ = std::move(comm).value();
  log_set_rank(rt->topo_.rank, rt->topo_.world_size);
  return rt;
}

MpiRuntime::~MpiRuntime() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

int MpiRuntime::report_agreed(const Status& s, int code) {
  if (s.code() == StatusCode::kDeadlineExceeded) exit_local(s, kExitCommTimeout);  // never agreed: see runtime.h
  if (is_root()) {
    log_set_rank(-1, 1);  // the line speaks for every rank: no "[rank 0]" prefix
    log_error(s.message());
  }
  return code;
}

int MpiRuntime::run(int (*body)(MpiRuntime&, int, char**), int argc, char** argv) {
  try {
    return body(*this, argc, argv);
  } catch (const std::bad_alloc&) {
    exit_local(Status::Unavailable("rank " + std::to_string(topo_.rank) +
                                   ": out of memory (host or GPU): try a smaller data.global_batch or "
                                   "data.eval_batch, or fewer ranks per node"),
               kExitFailure);
  }
}

void MpiRuntime::exit_local(const Status& s, int code) {
  // The watchdog's line names its rank itself ("rank 0: collective ...").
  if (s.code() == StatusCode::kDeadlineExceeded) log_set_rank(-1, 1);
  log_error(s.message());
  std::fflush(stdout);
  comm_->abort(code);  // also for one rank: no clean shutdown is possible mid-failure
}

}  // namespace shardtrain

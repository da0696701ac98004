// The NCCL communicator's factory, declared without any CUDA or NCCL types so the rest of
// comm/ needs no #if: nccl_communicator.cc implements it when SHARDTRAIN_CUDA is on,
// nccl_unavailable.cc (which answers Unavailable) when it is off.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "backend/backend.h"
#include "comm/communicator.h"

namespace shardtrain {

// Whether this build has NCCL.
bool nccl_built();

// Collective over `comm` (MPI, host): rank 0 makes the ncclUniqueId and broadcasts it;
// every rank initialises its NCCL communicator (non-blocking init, bounded by the
// watchdog's timeout) on backend's GPU, with collectives on a dedicated stream ordered
// against backend's compute stream by events. Collectives register with `watchdog` under
// `label`; one unfinished after the watchdog's timeout (when > 0) is named in one line and
// aborts the NCCL communicator (ncclCommAbort), and every later call returns that
// kDeadlineExceeded error. REQUIRES: backend is the CUDA backend and outlives the
// communicator; every rank calls.
StatusOr<std::unique_ptr<Communicator>> make_nccl_communicator(Backend& backend, MPI_Comm comm,
                                                               std::shared_ptr<Watchdog> watchdog,
                                                               const std::string& label);

}  // namespace shardtrain

// Builds the communicator for a job's device buffers (gradients, parameters).
//
// Collective over `control`: every rank gathers every rank's "<hostname>/<device
// identity>", all make the same choice (comm/comm_choice.h), and a failure on any rank is
// agreed, so every rank returns the same error. Rank 0 logs the choice in one line.
// The control communicator itself (MPI over host buffers) stays in use for agreement,
// metrics and anything else that lives on the host.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "comm/communicator.h"
#include "comm/mpi/mpi_communicator.h"
#include "comm/mpi/topology.h"
#include "config/shardtrain.pb.h"

namespace shardtrain {

// Applies the job's comm config to the watchdog that the control communicator and the
// device communicator share: comm.timeout_s, and comm.check_sequence, which is collective
// over `comm` (the checks gather over a duplicate of it). Call on every rank, before the
// collectives it should cover.
Status configure_watchdog(Watchdog& watchdog, const config::CommConfig& cfg, MPI_Comm comm);

// The returned communicator registers its collectives with control's watchdog, labelled
// "grad". REQUIRES: backend outlives the returned communicator.
StatusOr<std::unique_ptr<Communicator>> make_device_communicator(const config::CommConfig& cfg, Backend& backend,
                                                                 MpiCommunicator& control, const Topology& topo);

}  // namespace shardtrain

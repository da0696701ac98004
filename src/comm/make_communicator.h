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

// REQUIRES: backend outlives the returned communicator.
StatusOr<std::unique_ptr<Communicator>> make_device_communicator(const config::CommConfig& cfg, Backend& backend,
                                                                 MpiCommunicator& control, const Topology& topo);

}  // namespace shardtrain

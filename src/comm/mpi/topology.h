// Where this rank sits in the job: global rank and size, and its place on its node.
//
// The local rank picks the GPU and the local size divides the node's cores between ranks.
// Launchers say it in the environment (OMPI_COMM_WORLD_LOCAL_RANK/_SIZE from mpirun,
// SLURM_LOCALID/SLURM_NTASKS_PER_NODE-ish from srun); when they don't (a singleton run, or
// another launcher) MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) answers instead.
#pragma once

#include <mpi.h>

#include <string>

#include "core/status.h"

namespace shardtrain {

struct Topology {
  int rank = 0, world_size = 1;
  int local_rank = 0, local_size = 1;
  std::string hostname;
  std::string source;  // "OMPI env", "SLURM env" or "MPI shared-memory split"
};

StatusOr<Topology> discover_topology(MPI_Comm comm);

}  // namespace shardtrain

// Which GPU a rank uses. Host logic only (no CUDA), so it is unit-tested without a GPU.
//
// Ranks on a node are numbered by their local rank (OMPI_COMM_WORLD_LOCAL_RANK,
// SLURM_LOCALID or MPI_Comm_split_type; see comm/mpi/topology.h). Rank i of a node takes
// visible device i mod the device count, so 8 ranks on an 8-GPU node get one GPU each, and
// more ranks than GPUs share them round-robin (the communicator then falls back from NCCL
// to host-staged MPI). CUDA_VISIBLE_DEVICES, set by Slurm's --gpus-per-task or by hand,
// narrows what "visible" means before this runs.
#pragma once

#include <string>

#include "core/status.h"

namespace shardtrain {

// REQUIRES: local_rank >= 0. `probe_error` is the CUDA runtime's answer when counting
// devices failed ("" when it did not); it goes into the error so the user sees why
// (no driver, CUDA_VISIBLE_DEVICES empty, ...). Unavailable when there is no device.
StatusOr<int> select_cuda_device(int local_rank, int device_count, const std::string& probe_error);

}  // namespace shardtrain

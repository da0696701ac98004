// HostStagedCommunicator: collectives on a backend's device buffers carried out by MPI
// through host memory. For GPU ranks that cannot use NCCL (several ranks on one GPU, or
// comm.backend=MPI); Open MPI here is not CUDA-aware, so device pointers never reach it.
//
// An async collective synchronizes the backend (the compute that produced the buffer),
// copies the buffer to a host staging area owned by its CommWork, and starts the MPI
// collective; wait() finishes MPI and copies the result back to the device. Each work has
// its own staging area, so several may be in flight.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "comm/communicator.h"
#include "comm/mpi/mpi_communicator.h"

namespace shardtrain {

class HostStagedCommunicator final : public Communicator {
 public:
  // REQUIRES: backend outlives this communicator.
  HostStagedCommunicator(std::unique_ptr<MpiCommunicator> host, Backend& backend);

  int rank() const override { return host_->rank(); }
  int world_size() const override { return host_->world_size(); }
  std::string name() const override { return "mpi (host-staged)"; }
  Device buffer_device() const override { return backend_.device(); }

  [[noreturn]] void abort(int exit_code) override { host_->abort(exit_code); }

 protected:
  // Collectives register once, here, under the wrapped MPI communicator's tracker (its
  // label and sequence numbers); its MPI side starts under that same registration.
  StatusOr<CommWorkPtr> start_all_reduce(const Collective& c, void* buf, int64_t count, CommDType dtype,
                                         ReduceOp op) override;
  StatusOr<CommWorkPtr> start_broadcast(const Collective& c, void* buf, int64_t count, CommDType dtype,
                                        int root) override;
  StatusOr<CommWorkPtr> start_all_gather(const Collective& c, const void* send, void* recv, int64_t count,
                                         CommDType dtype) override;
  StatusOr<CommWorkPtr> start_reduce_scatter(const Collective& c, const void* send, void* recv, int64_t count,
                                             CommDType dtype, ReduceOp op) override;
  StatusOr<CommWorkPtr> start_barrier(const Collective& c) override;

 private:
  std::unique_ptr<MpiCommunicator> host_;
  Backend& backend_;
};

}  // namespace shardtrain

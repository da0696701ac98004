// MpiCommunicator: Communicator over MPI with host buffers. Used by CPU ranks, and by
// GPU ranks that cannot use NCCL (host-staged), e.g. several ranks on one GPU.
//
// Collectives are MPI's non-blocking ones (MPI_Iallreduce, ...); the blocking forms wait
// at once. Their combination order is fixed for a given world size and message size
// (Open MPI's libnbc schedules), so repeated runs are reproducible; the trainer relies on
// that for bitwise resume. A wait polls under the watchdog (mpi/mpi_wait.h): it sleeps
// instead of spinning when a peer is late, and fails naming the collective when the
// watchdog's timeout passes.
#pragma once

#include <mpi.h>

#include <memory>

#include "comm/communicator.h"
#include "comm/watchdog.h"

namespace shardtrain {

class MpiCommunicator final : public Communicator {
 public:
  // Wraps (does not own or free) `comm`. Collective over `comm` (it sets up the progress
  // board, comm/progress_board.h). Collectives register with `watchdog` (a new one with
  // the default timeout when null) under `label`. REQUIRES: MPI initialised.
  static StatusOr<std::unique_ptr<MpiCommunicator>> create(MPI_Comm comm, std::shared_ptr<Watchdog> watchdog = nullptr,
                                                           std::string label = "mpi");
  // Over a private duplicate of `comm` (MPI_Comm_dup, so its messages never match those
  // of `comm`), freed when the communicator dies. Collective over `comm`.
  static StatusOr<std::unique_ptr<MpiCommunicator>> create_dup(MPI_Comm comm,
                                                               std::shared_ptr<Watchdog> watchdog = nullptr,
                                                               std::string label = "mpi");
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string name() const override { return "mpi"; }
  Device buffer_device() const override { return Device::kCpu; }
  MPI_Comm mpi_comm() const { return comm_; }

  [[noreturn]] void abort(int exit_code) override;

 protected:
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
  // Stages device buffers through host memory and starts the MPI side here, under the
  // registration (and the tracker) it shares with this communicator.
  friend class HostStagedCommunicator;

  MpiCommunicator(std::shared_ptr<CollectiveTracker> tracker, MPI_Comm comm, int rank, int size, bool owned)
      : Communicator(std::move(tracker)), comm_(comm), rank_(rank), size_(size), owned_(owned) {}
  MPI_Comm comm_;
  int rank_;
  int size_;
  bool owned_;
};

}  // namespace shardtrain

// MpiCommunicator: Communicator over MPI with host buffers. Used by CPU ranks, and by
// GPU ranks that cannot use NCCL (host-staged), e.g. several ranks on one GPU.
//
// Collectives are MPI's non-blocking ones (MPI_Iallreduce, ...); the blocking forms wait
// at once. Their combination order is fixed for a given world size and message size
// (Open MPI's libnbc schedules), so repeated runs are reproducible; the trainer relies on
// that for bitwise resume.
#pragma once

#include <mpi.h>

#include <memory>

#include "comm/communicator.h"

namespace shardtrain {

class MpiCommunicator final : public Communicator {
 public:
  // Wraps (does not own or free) `comm`. REQUIRES: MPI initialised.
  static StatusOr<std::unique_ptr<MpiCommunicator>> create(MPI_Comm comm);
  // Over a private duplicate of `comm` (MPI_Comm_dup, so its messages never match those
  // of `comm`), freed when the communicator dies. Collective over `comm`.
  static StatusOr<std::unique_ptr<MpiCommunicator>> create_dup(MPI_Comm comm);
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string name() const override { return "mpi"; }
  Device buffer_device() const override { return Device::kCpu; }
  MPI_Comm mpi_comm() const { return comm_; }

  StatusOr<CommWorkPtr> all_reduce_async(void* buf, int64_t count, CommDType dtype, ReduceOp op) override;
  StatusOr<CommWorkPtr> broadcast_async(void* buf, int64_t count, CommDType dtype, int root) override;
  StatusOr<CommWorkPtr> all_gather_async(const void* send, void* recv, int64_t count, CommDType dtype) override;
  StatusOr<CommWorkPtr> reduce_scatter_async(const void* send, void* recv, int64_t count, CommDType dtype,
                                             ReduceOp op) override;
  Status barrier() override;
  [[noreturn]] void abort(int exit_code) override;

 private:
  MpiCommunicator(MPI_Comm comm, int rank, int size, bool owned)
      : comm_(comm), rank_(rank), size_(size), owned_(owned) {}
  MPI_Comm comm_;
  int rank_;
  int size_;
  bool owned_;
};

}  // namespace shardtrain

// MpiCommunicator: Communicator over MPI with host buffers. Used by CPU ranks, and by
// GPU ranks that cannot use NCCL (host-staged), e.g. several ranks on one GPU.
//
// Reductions of float buffers go through MPI's own algorithms, whose combination order
// is fixed for a given world size and message size in Open MPI's tuned component, so
// repeated runs are reproducible; the trainer relies on that for bitwise resume.
#pragma once

#include <mpi.h>

#include <memory>

#include "comm/communicator.h"

namespace shardtrain {

class MpiCommunicator final : public Communicator {
 public:
  // Wraps (does not own or free) `comm`. REQUIRES: MPI initialised.
  static StatusOr<std::unique_ptr<MpiCommunicator>> create(MPI_Comm comm);

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string name() const override { return "mpi"; }

  Status all_reduce(void* buf, int64_t count, CommDType dtype, ReduceOp op) override;
  Status broadcast(void* buf, int64_t count, CommDType dtype, int root) override;
  Status all_gather(const void* send, void* recv, int64_t count, CommDType dtype) override;
  Status reduce_scatter(const void* send, void* recv, int64_t count, CommDType dtype, ReduceOp op) override;
  Status barrier() override;
  [[noreturn]] void abort(int exit_code) override;

 private:
  MpiCommunicator(MPI_Comm comm, int rank, int size) : comm_(comm), rank_(rank), size_(size) {}
  MPI_Comm comm_;
  int rank_;
  int size_;
};

}  // namespace shardtrain

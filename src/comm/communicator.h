// Communicator: the collectives ranks use to stay in step. One interface, implemented
// over MPI with host buffers (mpi/) and, for GPU ranks, over NCCL (nccl/, later issue).
//
// Contract:
//   - every rank of the communicator must call the same collectives in the same order
//     with the same counts (the usual MPI rule); buffers live on the device the
//     implementation was made for (host memory for MpiCommunicator);
//   - reductions use a fixed order for a fixed world size, so results are reproducible;
//   - a failing call returns a Status naming the collective; the caller (cli/) then takes
//     the whole job down with abort() so no rank is left waiting.
// Thread-safety: called from one thread per rank.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace shardtrain {

enum class ReduceOp { kSum, kMax };
enum class CommDType { kFloat32, kFloat64, kInt64, kInt32, kUint8 };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string name() const = 0;  // "mpi"

  // In place: buf[0..count) = op over ranks of buf.
  virtual Status all_reduce(void* buf, int64_t count, CommDType dtype, ReduceOp op) = 0;
  // buf[0..count) of `root` copied to every rank.
  virtual Status broadcast(void* buf, int64_t count, CommDType dtype, int root) = 0;
  // recv[r*count .. (r+1)*count) = send of rank r.
  virtual Status all_gather(const void* send, void* recv, int64_t count, CommDType dtype) = 0;
  // recv[0..count) = op over ranks of send[rank*count .. (rank+1)*count).
  virtual Status reduce_scatter(const void* send, void* recv, int64_t count, CommDType dtype, ReduceOp op) = 0;
  virtual Status barrier() = 0;
  // Ends every rank of the job with `exit_code`. Does not return.
  [[noreturn]] virtual void abort(int exit_code) = 0;
};

}  // namespace shardtrain

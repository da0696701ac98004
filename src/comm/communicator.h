// Communicator: the collectives ranks use to stay in step. One interface, three
// implementations: MPI over host buffers (mpi/), NCCL over device buffers on a dedicated
// stream (nccl/), and MPI with host staging for GPU ranks that cannot use NCCL
// (host_staged_communicator.h).
//
// Contract:
//   - every rank of the communicator must call the same collectives in the same order
//     with the same counts (the usual MPI rule); buffers live on the device the
//     implementation was made for (buffer_device());
//   - every collective has an async form returning a CommWork; the sync form is the async
//     one followed by wait(). Buffers must stay alive and untouched until wait() returns.
//     For NCCL, "issued" means ordered after the compute work already issued on the
//     backend's stream, and wait() orders later compute work after the collective;
//   - reductions use a fixed order for a fixed world size and placement, so results are
//     reproducible (NCCL: with the same topology and NCCL environment, since its algorithm
//     and protocol choices depend on them);
//   - a failing call returns a Status naming the collective; the caller (cli/) then takes
//     the whole job down with abort() so no rank is left waiting.
// Thread-safety: called from one thread per rank.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "core/tensor.h"  // Device

namespace shardtrain {

enum class ReduceOp { kSum, kMax };
// kBFloat16: gradients on the wire under comm.grad_dtype BF16 (NCCL only: MPI has no
// bf16 type; see Communicator::supports_bf16).
enum class CommDType { kFloat32, kFloat64, kInt64, kInt32, kUint8, kBFloat16 };
size_t comm_dtype_size(CommDType t);

// One collective in flight. wait() finishes it (MPI: blocks until done; NCCL: makes the
// compute stream wait for it and checks the communicator's health). Destroying a work
// that was never waited for waits for it first.
class CommWork {
 public:
  virtual ~CommWork() = default;
  virtual Status wait() = 0;
};
using CommWorkPtr = std::unique_ptr<CommWork>;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string name() const = 0;  // "mpi", "nccl", "mpi (host-staged)"
  // Where collective buffers live: kCpu for MPI, kCuda for NCCL and host-staged.
  virtual Device buffer_device() const = 0;
  // Whether collectives take CommDType::kBFloat16 (sums in bf16 on the wire: NCCL).
  virtual bool supports_bf16() const { return false; }

  // In place: buf[0..count) = op over ranks of buf.
  virtual StatusOr<CommWorkPtr> all_reduce_async(void* buf, int64_t count, CommDType dtype, ReduceOp op) = 0;
  // buf[0..count) of `root` copied to every rank.
  virtual StatusOr<CommWorkPtr> broadcast_async(void* buf, int64_t count, CommDType dtype, int root) = 0;
  // recv[r*count .. (r+1)*count) = send of rank r.
  virtual StatusOr<CommWorkPtr> all_gather_async(const void* send, void* recv, int64_t count, CommDType dtype) = 0;
  // recv[0..count) = op over ranks of send[rank*count .. (rank+1)*count).
  virtual StatusOr<CommWorkPtr> reduce_scatter_async(const void* send, void* recv, int64_t count, CommDType dtype,
                                                     ReduceOp op) = 0;
  virtual Status barrier() = 0;
  // The first failure seen of any collective issued so far; does not wait. An NCCL
  // collective can fail after its wait() returned OK (wait() does not block the host);
  // once the backend has synchronized past that wait(), OK here means it finished
  // cleanly. MPI collectives finish inside wait(), so they have nothing to add.
  virtual Status health() { return Status::Ok(); }

  // The blocking forms: issue, then wait.
  Status all_reduce(void* buf, int64_t count, CommDType dtype, ReduceOp op) {
    return finish(all_reduce_async(buf, count, dtype, op));
  }
  Status broadcast(void* buf, int64_t count, CommDType dtype, int root) {
    return finish(broadcast_async(buf, count, dtype, root));
  }
  Status all_gather(const void* send, void* recv, int64_t count, CommDType dtype) {
    return finish(all_gather_async(send, recv, count, dtype));
  }
  Status reduce_scatter(const void* send, void* recv, int64_t count, CommDType dtype, ReduceOp op) {
    return finish(reduce_scatter_async(send, recv, count, dtype, op));
  }

  // Ends every rank of the job with `exit_code`. Does not return.
  [[noreturn]] virtual void abort(int exit_code) = 0;

 private:
  static Status finish(StatusOr<CommWorkPtr> work) {
    if (!work.ok()) return work.status();
    return work.value()->wait();
  }
};

}  // namespace shardtrain

// Communicator: the collectives ranks use to stay in step. One interface, three
// implementations: MPI over host buffers (mpi/), NCCL over device buffers on a dedicated
// stream (nccl/), and MPI with host staging for GPU ranks that cannot use NCCL
// (host_staged_communicator.h).
//
// Contract:
//   - every rank of the communicator must call the same collectives in the same order
//     with the same counts (the usual MPI rule; comm.check_sequence verifies it); buffers
//     live on the device the implementation was made for (buffer_device());
//   - every collective has an async form returning a CommWork; the sync form is the async
//     one followed by wait(). Buffers must stay alive and untouched until wait() returns.
//     For NCCL, "issued" means ordered after the compute work already issued on the
//     backend's stream, and wait() orders later compute work after the collective;
//   - reductions use a fixed order for a fixed world size and placement, so results are
//     reproducible (NCCL: with the same topology and NCCL environment, since its algorithm
//     and protocol choices depend on them);
//   - every collective enters through one non-virtual entry point (enter()), which
//     registers it with the job's watchdog (comm/watchdog.h: name, sequence number, count,
//     type, step), runs the sequence check when enabled, and then lets the implementation
//     start it (start_*). A collective not completed within the watchdog's timeout fails
//     with kDeadlineExceeded naming it; after any such failure no new collective starts;
//   - a failing call returns a Status naming the collective; the caller (cli/) then takes
//     the whole job down with abort() so no rank is left waiting.
// Thread-safety: called from one thread per rank.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "comm/comm_types.h"
#include "comm/watchdog.h"
#include "core/status.h"
#include "core/tensor.h"  // Device

namespace shardtrain {

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
  StatusOr<CommWorkPtr> all_reduce_async(void* buf, int64_t count, CommDType dtype, ReduceOp op) {
    return enter({CollectiveOp::kAllReduce, count, dtype},
                 [&](const Collective& c) { return start_all_reduce(c, buf, count, dtype, op); });
  }
  // buf[0..count) of `root` copied to every rank.
  StatusOr<CommWorkPtr> broadcast_async(void* buf, int64_t count, CommDType dtype, int root) {
    return enter({CollectiveOp::kBroadcast, count, dtype, root},
                 [&](const Collective& c) { return start_broadcast(c, buf, count, dtype, root); });
  }
  // recv[r*count .. (r+1)*count) = send of rank r.
  StatusOr<CommWorkPtr> all_gather_async(const void* send, void* recv, int64_t count, CommDType dtype) {
    return enter({CollectiveOp::kAllGather, count, dtype},
                 [&](const Collective& c) { return start_all_gather(c, send, recv, count, dtype); });
  }
  // recv[0..count) = op over ranks of send[rank*count .. (rank+1)*count).
  StatusOr<CommWorkPtr> reduce_scatter_async(const void* send, void* recv, int64_t count, CommDType dtype,
                                             ReduceOp op) {
    return enter({CollectiveOp::kReduceScatter, count, dtype},
                 [&](const Collective& c) { return start_reduce_scatter(c, send, recv, count, dtype, op); });
  }
  // Returns once every rank has called it.
  Status barrier() {
    return finish(enter({CollectiveOp::kBarrier}, [&](const Collective& c) { return start_barrier(c); }));
  }
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

  // The job's watchdog, shared with the other communicators made from this one. The
  // trainer tells it the current step (set_step) so that timeouts and mismatches name it.
  Watchdog& watchdog() const { return tracker_->watchdog(); }
  const std::shared_ptr<Watchdog>& watchdog_ptr() const { return tracker_->watchdog_ptr(); }
  void set_step(int64_t step) { tracker_->watchdog().set_step(step); }
  // How this communicator is named in watchdog messages ("control", "grad").
  const std::string& label() const { return tracker_->label(); }

  // Ends every rank of the job with `exit_code`. Does not return.
  [[noreturn]] virtual void abort(int exit_code) = 0;

 protected:
  // REQUIRES: tracker != null.
  explicit Communicator(std::shared_ptr<CollectiveTracker> tracker) : tracker_(std::move(tracker)) {}
  const std::shared_ptr<CollectiveTracker>& tracker_ptr() const { return tracker_; }

  // The implementations: start collective `c` (already registered and checked; count >= 0).
  // The returned work reports completion to the tracker and enforces the timeout.
  virtual StatusOr<CommWorkPtr> start_all_reduce(const Collective& c, void* buf, int64_t count, CommDType dtype,
                                                 ReduceOp op) = 0;
  virtual StatusOr<CommWorkPtr> start_broadcast(const Collective& c, void* buf, int64_t count, CommDType dtype,
                                                int root) = 0;
  virtual StatusOr<CommWorkPtr> start_all_gather(const Collective& c, const void* send, void* recv, int64_t count,
                                                 CommDType dtype) = 0;
  virtual StatusOr<CommWorkPtr> start_reduce_scatter(const Collective& c, const void* send, void* recv,
                                                     int64_t count, CommDType dtype, ReduceOp op) = 0;
  virtual StatusOr<CommWorkPtr> start_barrier(const Collective& c) = 0;

 private:
  // The one entry point of every collective: refuses new work after a failure, applies
  // fault injection, registers `d` and runs the sequence check, then `start`s it.
  template <typename Start>
  StatusOr<CommWorkPtr> enter(const CollectiveDesc& d, Start start) {
    Collective c;
    bool skipped = false;
    RETURN_IF_ERROR(register_collective(d, &c, &skipped));
    if (skipped) return skipped_work();
    return start(c);
  }
  Status register_collective(const CollectiveDesc& d, Collective* c, bool* skipped);
  static CommWorkPtr skipped_work();

  static Status finish(StatusOr<CommWorkPtr> work) {
    if (!work.ok()) return work.status();
    return work.value()->wait();
  }

  std::shared_ptr<CollectiveTracker> tracker_;
};

}  // namespace shardtrain

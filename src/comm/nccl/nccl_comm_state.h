// CommState: an NCCL communicator handle and its health, shared by NcclCommunicator, its
// works and its watchdog thread (comm/nccl/nccl_communicator.cc, the only includer).
//
// Contract: every NCCL call on the handle, from any thread, is made under the state's
// mutex and only while the handle is alive; the first failure is recorded and aborts the
// handle (ncclCommAbort) exactly once, after which every call returns that failure.
// Collectives in flight are the job watchdog's (comm/watchdog.h): their completion is
// reported to the tracker, and one overdue past the watchdog's timeout is expired there,
// which gives the same one-line report as on MPI ranks (kDeadlineExceeded, exit 76). A
// failure the watchdog recorded elsewhere (another communicator timed out) aborts this
// handle too, so no stream stays blocked on NCCL kernels while the job goes down.
// Header-only because the build lists one source file for comm/nccl.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "comm/nccl/nccl_check.h"
#include "comm/watchdog.h"
#include "core/log.h"
#include "core/status.h"

namespace shardtrain {
namespace nccl_internal {

using Clock = std::chrono::steady_clock;
constexpr auto kPollPeriod = std::chrono::microseconds(200);  // ncclInProgress polling
// Bound on ncclCommFinalize in the destructor when timeout_s is 0 ("wait forever" is for
// collectives; a destructor must end).
constexpr double kFinalizeBoundS = 60;
// Bound on NCCL init when comm.timeout_s is 0 (see init_comm).
constexpr double kInitBoundS = 600;

inline std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g s", s);
  return buf;
}

// A CUDA event without timing, destroyed with its last owner (a work or the watchdog's
// in-flight list, whichever lets go last).
using EventPtr = std::shared_ptr<std::remove_pointer_t<cudaEvent_t>>;

// Thread-safe (see the contract above).
class CommState {
 public:
  CommState(ncclComm_t comm, std::shared_ptr<CollectiveTracker> tracker)
      : comm_(comm), rank_(tracker->rank()), tracker_(std::move(tracker)) {}

  // The first recorded error; else NCCL's asynchronous error, recorded (with an abort).
  Status health() {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_.ok() && comm_ != nullptr) check_async_locked();
    return error_;
  }

  // Records `why` (the first error wins) and aborts the communicator, exactly once.
  void fail(const Status& why) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_locked(why);
  }

  // Runs `call(comm)` (an NCCL call that may answer ncclInProgress) and polls until NCCL
  // is done with it, releasing the lock between polls. Any failure is recorded.
  template <typename Call>
  Status call(const char* what, Call nccl_call) {
    const auto start = Clock::now();
    std::unique_lock<std::mutex> lock(mu_);
    if (comm_ == nullptr) return unusable_locked();
    ncclResult_t r = nccl_call(comm_);
    while (r == ncclInProgress) {
      lock.unlock();
      std::this_thread::sleep_for(kPollPeriod);
      lock.lock();
      if (comm_ == nullptr) return unusable_locked();  // the watchdog aborted it meanwhile
      if (timed_out(start)) {
        fail_locked(tracker_->watchdog().fail(
            Status::DeadlineExceeded("rank " + std::to_string(rank_) + ": NCCL " + std::string(what) +
                                     " could not be enqueued within " + seconds_text(timeout_s()) +
                                     ": aborted the communicator"),
            /*agreed=*/false));
        return error_;
      }
      const ncclResult_t q = ncclCommGetAsyncError(comm_, &r);
      if (q != ncclSuccess) r = q;
    }
    if (r != ncclSuccess)
      fail_locked(Status::Internal("NCCL " + std::string(what) + " on rank " + std::to_string(rank_) +
                                   " failed: " + nccl_error_text(r)));
    return error_;
  }

  // Watches `done`, the end of registered collective `c`, until it completes (reported to
  // the tracker) or the timeout expires it.
  void track(EventPtr done, const Collective& c) {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.push_back({std::move(done), c});
  }

  // One watchdog pass. REQUIRES: the calling thread's current device is the comm's.
  // Returns whether this pass aborted the communicator.
  bool watch() {
    std::lock_guard<std::mutex> lock(mu_);
    if (comm_ == nullptr) return false;
    if (tracker_->watchdog().failed()) {  // the job is going down: stop NCCL's kernels too
      fail_locked(tracker_->watchdog().failure());
      return true;
    }
    tracker_->alive();  // this process runs: peers must not call it unresponsive
    const auto now = Clock::now();
    // fail_locked() empties the list, which ends the loop.
    for (size_t i = 0; i < in_flight_.size();) {
      const Collective& c = in_flight_[i].c;
      const cudaError_t q = cudaEventQuery(in_flight_[i].done.get());
      if (q == cudaSuccess) {
        tracker_->complete(c);
        in_flight_.erase(in_flight_.begin() + i);
      } else if (q != cudaErrorNotReady) {
        fail_locked(cuda_status(q, "cudaEventQuery", __FILE__, __LINE__)
                        .WithContext("NCCL " + collective_text(c, tracker_->label()) + " on rank " +
                                     std::to_string(rank_)));
      } else if (tracker_->overdue(c, now)) {
        fail_locked(tracker_->expire(c));  // the one line; the abort follows in fail_locked
      } else {
        ++i;
      }
    }
    if (comm_ != nullptr) check_async_locked();
    return comm_ == nullptr;
  }

  // Frees the communicator: finalize (bounded) and destroy when healthy, else abort.
  void destroy() {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.clear();
    if (comm_ == nullptr) return;
    if (error_.ok()) {
      const auto start = Clock::now();
      const double bound = timeout_s() > 0 ? timeout_s() : kFinalizeBoundS;
      ncclResult_t r = ncclCommFinalize(comm_);
      while (r == ncclInProgress && std::chrono::duration<double>(Clock::now() - start).count() < bound) {
        std::this_thread::sleep_for(kPollPeriod);
        if (ncclCommGetAsyncError(comm_, &r) != ncclSuccess) r = ncclInternalError;
      }
      if (r == ncclSuccess) {
        // Finalized: destroy only frees local memory; on failure the handle is gone anyway.
        const ncclResult_t d = ncclCommDestroy(comm_);
        comm_ = nullptr;
        if (d != ncclSuccess) log_warn("ncclCommDestroy on rank " + std::to_string(rank_) + ": " + nccl_error_text(d));
        return;
      }
      log_warn("NCCL communicator on rank " + std::to_string(rank_) + " did not finalize cleanly (" +
               nccl_error_text(r) + "): aborting it");
    }
    (void)ncclCommAbort(comm_);  // frees the handle whatever it answers
    comm_ = nullptr;
  }

 private:
  struct InFlight {
    EventPtr done;
    Collective c;
  };

  double timeout_s() const { return tracker_->watchdog().timeout_s(); }
  bool timed_out(Clock::time_point since) const {
    return timeout_s() > 0 && std::chrono::duration<double>(Clock::now() - since).count() > timeout_s();
  }

  // Why the handle is gone: the recorded error, or (after destroy()) a plain refusal.
  Status unusable_locked() const {
    if (!error_.ok()) return error_;
    return Status::FailedPrecondition("NCCL communicator on rank " + std::to_string(rank_) + " was destroyed");
  }

  void check_async_locked() {
    ncclResult_t async = ncclSuccess;
    const ncclResult_t q = ncclCommGetAsyncError(comm_, &async);
    if (q != ncclSuccess) async = q;
    if (async != ncclSuccess && async != ncclInProgress)
      fail_locked(Status::Internal("NCCL asynchronous error on rank " + std::to_string(rank_) + ": " +
                                   nccl_error_text(async) + ": aborted the communicator"));
  }

  void fail_locked(const Status& why) {
    if (error_.ok()) error_ = why;
    if (comm_ == nullptr) return;
    // Abort ends NCCL's kernels on this rank, so streams waiting on them drain and the
    // host never blocks on a collective that cannot finish.
    const ncclResult_t r = ncclCommAbort(comm_);
    comm_ = nullptr;
    in_flight_.clear();
    if (r != ncclSuccess) log_warn("ncclCommAbort on rank " + std::to_string(rank_) + ": " + nccl_error_text(r));
  }

  std::mutex mu_;
  ncclComm_t comm_;  // nullptr once aborted or destroyed
  const int rank_;
  const std::shared_ptr<CollectiveTracker> tracker_;
  Status error_;
  std::vector<InFlight> in_flight_;
};

}  // namespace nccl_internal
}  // namespace shardtrain

// The collective watchdog. Every collective of every communicator (MPI, host-staged MPI,
// NCCL) is registered through Communicator's one entry point (communicator.h) with its
// name, per-communicator sequence number, element count and type, and the trainer's step,
// so that one that has not completed within comm.timeout_s is named in one line, with
// what each peer last completed where that can be learnt, and the job is taken down
// instead of hanging for ever:
//
//   rank 0: collective all_reduce #1234 (25690 float32, step 57, comm grad) not completed
//   after 10 s; rank 1 last completed #1233 (stuck)
//
// Pieces:
//   Watchdog           one per job, shared by the job's communicators (control and
//                      device): the timeout, the trainer's step, the first failure (after
//                      which no communicator starts new work and every wait ends), the
//                      optional sequence check (comm.check_sequence, sequence_check.h) and
//                      the fault-injection hook that skips a collective (tests only);
//   CollectiveTracker  one per communicator: its label ("control", "grad"), its sequence
//                      numbers, and its progress board (progress_board.h), through which
//                      the ranks on a host see each other's progress even when a peer is
//                      stopped.
//
// Implementations report completion (complete()); one that finds a collective overdue
// calls expire(), which records the failure and returns a kDeadlineExceeded Status holding
// the line above. Library code never exits: the CLI prints that line and ends the job with
// MPI_Abort and exit code 76 (kExitCommTimeout, cli/runtime.h) — from the waiting rank,
// since the stuck one cannot take part in anything.
//
// Thread-safety: everything may be called from any thread (NCCL's watchdog thread
// completes and expires collectives) except CollectiveTracker::begin(), which belongs to
// the one thread that issues collectives.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "comm/comm_types.h"
#include "comm/progress_board.h"
#include "core/status.h"

namespace shardtrain {

using WatchdogClock = std::chrono::steady_clock;

enum class CollectiveOp { kAllReduce, kBroadcast, kAllGather, kReduceScatter, kBarrier };
const char* collective_op_name(CollectiveOp op);  // "all_reduce", "broadcast", ...

// What the caller asked for; every rank must ask for the same (comm.check_sequence checks).
struct CollectiveDesc {
  CollectiveOp op = CollectiveOp::kBarrier;
  int64_t count = 0;  // elements per rank as passed to the call (0 for a barrier)
  CommDType dtype = CommDType::kUint8;
  int root = -1;      // broadcast only
};

// A registered collective.
struct Collective {
  CollectiveDesc desc;
  int64_t seq = 0;   // 1-based, per communicator
  int64_t step = 0;  // the trainer's step when it was issued (0: before training)
  WatchdogClock::time_point issued;
};

// "all_reduce #1234 (25690 float32, step 57, comm grad)"; a broadcast adds its root.
std::string collective_text(const Collective& c, const std::string& comm);

// A peer inside a collective that has shown no sign of life for this long is not polling:
// it is stopped (SIGSTOP), hung, or starved of CPU. Waiting ranks poll every millisecond.
constexpr double kPeerSilentS = 1.0;

// "; rank 1 last completed #1233 (stuck)": what the peers' progress says about collective
// `seq`, for the timeout line. Named: ranks that did not issue it and are in no other
// collective ("(stuck)": computing, sleeping or stopped outside collectives), ranks inside
// a collective but silent for kPeerSilentS ("unresponsive for 5.1 s inside #1234
// (stuck)"), and ranks waiting in an earlier collective ("waiting in #1230"). Ranks that
// joined `seq` and are polling are not named; ranks on other hosts are counted as unknown.
// `self` is left out. At most 8 ranks are named.
std::string peers_text(int64_t seq, int self, const std::vector<PeerProgress>& peers);

class SequenceCheck;

class Watchdog {
 public:
  static constexpr double kDefaultTimeoutS = 600;  // comm.timeout_s's default

  explicit Watchdog(double timeout_s = kDefaultTimeoutS);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Seconds from issue to completion before a collective is declared stuck; 0: never.
  void set_timeout(double seconds) { timeout_s_.store(seconds); }
  double timeout_s() const { return timeout_s_.load(); }
  // The trainer's step, recorded with each collective issued from now on.
  void set_step(int64_t step) { step_.store(step, std::memory_order_relaxed); }
  int64_t step() const { return step_.load(std::memory_order_relaxed); }

  // comm.check_sequence: from now on every collective is checked first. REQUIRES: every
  // communicator of this watchdog spans the same ranks, in the same order, as the check's.
  void set_sequence_check(std::unique_ptr<SequenceCheck> check);
  SequenceCheck* sequence_check() const { return check_.get(); }

  // Fault injection (debug.fault, tests only): the next collective issued on any
  // communicator of this watchdog returns at once without running, as if this rank had
  // skipped it.
  void skip_next_collective() { skip_.store(true); }
  bool take_skip() { return skip_.load(std::memory_order_relaxed) && skip_.exchange(false); }

  // The job's first collective failure: a timeout, or a sequence mismatch. Once there is
  // one, no communicator of this watchdog starts new work and every wait returns it.
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  Status failure() const;
  // Whether the failure is the same on every rank (a sequence mismatch, found by a gather
  // every rank took part in), so ranks may exit cleanly instead of aborting.
  bool failure_agreed() const;
  // Records `why` unless a failure is already recorded; returns the recorded one.
  Status fail(const Status& why, bool agreed);

  // Tells the peers on this host, on the board of every communicator of this watchdog,
  // that this process is alive and polling: a rank polling one communicator must not look
  // dead to a peer waiting on another.
  void alive();

 private:
  friend class CollectiveTracker;  // attaches its board for its lifetime
  void attach(ProgressBoard* board);
  void detach(ProgressBoard* board);

  std::atomic<double> timeout_s_;
  std::atomic<int64_t> step_{0};
  std::atomic<bool> skip_{false};
  std::atomic<bool> failed_{false};
  mutable std::mutex mu_;
  Status failure_;       // guarded by mu_
  bool agreed_ = false;  // guarded by mu_
  std::unique_ptr<SequenceCheck> check_;
  std::mutex boards_mu_;
  std::vector<ProgressBoard*> boards_;  // guarded by boards_mu_
};

class CollectiveTracker {
 public:
  // `board` may be null: peers' progress is then unknown.
  CollectiveTracker(std::shared_ptr<Watchdog> watchdog, std::string label, int rank, int world_size,
                    std::unique_ptr<ProgressBoard> board);
  ~CollectiveTracker();
  CollectiveTracker(const CollectiveTracker&) = delete;
  CollectiveTracker& operator=(const CollectiveTracker&) = delete;

  Watchdog& watchdog() const { return *watchdog_; }
  const std::shared_ptr<Watchdog>& watchdog_ptr() const { return watchdog_; }
  const std::string& label() const { return label_; }
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }

  // Registers the next collective: its sequence number, the step, the time. Issuing
  // thread only.
  Collective begin(const CollectiveDesc& d);
  void complete(const Collective& c);
  // This rank is alive and polling (Watchdog::alive).
  void alive() { watchdog_->alive(); }
  int64_t last_issued() const { return issued_.load(); }
  int64_t last_completed() const { return completed_.load(); }

  // Whether `c` has been in flight longer than the timeout at `now`, not counting
  // `not_running`: time this process itself did not run (it was stopped or starved), which
  // is no peer's fault.
  bool overdue(const Collective& c, WatchdogClock::time_point now,
               WatchdogClock::duration not_running = WatchdogClock::duration::zero()) const;
  // Declares `c` stuck: records the failure on the watchdog (the first one wins) and
  // returns it (kDeadlineExceeded, the one line described at the top).
  Status expire(const Collective& c);

 private:
  std::shared_ptr<Watchdog> watchdog_;
  std::string label_;
  int rank_, world_size_;
  std::unique_ptr<ProgressBoard> board_;
  std::atomic<int64_t> issued_{0}, completed_{0};
};

}  // namespace shardtrain

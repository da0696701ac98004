// Stop signals: a signal only records that it arrived; the trainer acts on it at the next
// step boundary, after the ranks agree (train/step_vote.h). Nothing else is safe: a
// handler may run on any thread (the loader's, OpenMP's, MPI's) in the middle of a
// collective or an HDF5 write, so it must not start a collective, take a lock or allocate.
//
// The handler stores the signal number and the time it arrived in lock-free atomics.
// SIGINT always requests a stop; a second SIGINT writes one line and _exit(130)s at once
// (for a person at a terminal who does not want to wait for the checkpoint).
//
// Handlers are installed with SA_RESTART, so system calls in flight when a signal lands
// (file writes, socket reads inside MPI) resume instead of failing with EINTR.
//
// Thread safety: install() and the destructor from the main thread; received() and
// seconds_since_received() from any thread. At most one StopSignals exists at a time (the
// state is per process, as signal dispositions are).
#pragma once

#include <csignal>
#include <memory>
#include <vector>

#include "core/status.h"

namespace shardtrain {

class StopSignals {
 public:
  // Catches `signals` (e.g. SIGUSR1, SIGTERM) and SIGINT; clears what an earlier instance
  // recorded. The destructor restores the previous dispositions.
  static StatusOr<std::unique_ptr<StopSignals>> install(const std::vector<int>& signals);
  ~StopSignals();
  // Catches `signals` and SIGINT from now on instead of the earlier set (the others get
  // their previous disposition back). What was recorded so far stays: a stop asked for
  // while the job was starting is still a stop.
  Status change_to(const std::vector<int>& signals);
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The first stop signal that arrived (0: none yet).
  int received() const;
  // Seconds since that signal arrived (0 if none).
  double seconds_since_received() const;

 private:
  StopSignals() = default;
  Status catch_signals(const std::vector<int>& signals);
  void restore();
  struct Saved {
    int signo;
    struct sigaction previous;
  };
  std::vector<Saved> saved_;
};

}  // namespace shardtrain

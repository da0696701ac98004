#include "comm/mpi/mpi_wait.h"

#include <thread>

#include "core/check.h"

namespace shardtrain {

std::chrono::nanoseconds wait_backoff(std::chrono::nanoseconds waited) {
  if (waited < kWaitSpin) return std::chrono::nanoseconds(0);
  const std::chrono::nanoseconds cap = waited < kWaitBusyPeriod ? kWaitBusySleep : kWaitMaxSleep;
  return std::min<std::chrono::nanoseconds>(waited / 8, cap);
}

Status mpi_wait_watched(MPI_Request* request, const Collective& c, CollectiveTracker& tracker) {
  const auto start = WatchdogClock::now();
  auto last_poll = start;
  WatchdogClock::duration not_running{0};
  for (;;) {
    int done = 0;
    const int rc = MPI_Test(request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS)
      return Status::Internal("MPI " + collective_text(c, tracker.label()) + " failed: " + mpi_error_string(rc));
    if (done) return Status::Ok();
    if (tracker.watchdog().failed()) return tracker.watchdog().failure();
    const auto now = WatchdogClock::now();
    // Polls are at most kWaitMaxSleep apart; a far larger gap means this process was
    // stopped (SIGSTOP, then SIGCONT) or starved, which must not make it blame its peers
    // as soon as it runs again.
    if (now - last_poll > kSelfStall) not_running += now - last_poll;
    last_poll = now;
    tracker.alive();
    if (tracker.overdue(c, now, not_running)) return tracker.expire(c);
    const auto pause = wait_backoff(now - start);
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
  }
}

}  // namespace shardtrain

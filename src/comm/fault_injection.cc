#include "comm/fault_injection.h"

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "core/log.h"

namespace shardtrain {

Status fault_check_rank(const config::DebugConfig& debug, int world_size) {
  if (debug.has_fault() && debug.fault().rank() >= world_size)
    return Status::InvalidArgument("debug.fault.rank is " + std::to_string(debug.fault().rank()) +
                                   " but the job has " + std::to_string(world_size) + " rank(s)");
  return Status::Ok();
}

void fault_inject_at_step(const config::DebugConfig& debug, int rank, int64_t step, Watchdog& watchdog) {
  if (!debug.has_fault()) return;
  const config::FaultConfig& f = debug.fault();
  if (f.rank() != rank || f.step() != step) return;
  switch (f.action()) {
    case config::FaultConfig::ACTION_SLEEP: {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g s", f.seconds());
      log_warn("debug.fault: rank " + std::to_string(rank) + " sleeps " + secs + " at step " + std::to_string(step));
      std::this_thread::sleep_for(std::chrono::duration<double>(f.seconds()));
      return;
    }
    case config::FaultConfig::ACTION_SKIP_COLLECTIVE:
      watchdog.skip_next_collective();  // Communicator::enter logs the skip
      return;
    default:
      return;
  }
}

}  // namespace shardtrain

// Waiting for a non-blocking MPI collective under the watchdog (comm/watchdog.h).
//
// MPI's blocking calls have no timeout, and Open MPI's MPI_Wait busy-polls: a rank whose
// peer is stopped burns a whole core for ever, and on an oversubscribed node the spinning
// takes the CPU from the very peer it waits for. Here a wait polls MPI_Test, which also
// drives the collective's progress, and sleeps between polls:
//   - for the first kWaitSpin it spins: a peer that arrives promptly costs nothing;
//   - until kWaitBusyPeriod it sleeps 1/8 of the time waited so far, at most
//     kWaitBusySleep. A multi-round collective (a ring all-reduce of a large bucket) moves
//     to its next round only when this rank polls, so the gap must stay short while data
//     may still be moving: ~0.1 ms per round at most;
//   - after that a peer is late rather than slow, and the gap grows to kWaitMaxSleep:
//     a rank that waits for long polls 1000 times a second, 1-2% of a core.
// Each poll tells the peers this rank is alive (progress_board.h). The wait ends when the
// collective completes, when it is overdue (expired, which names it; time this process
// itself was stopped does not count), or when another collective of the job has failed
// (the job is going down).
#pragma once

#include <mpi.h>

#include <chrono>

#include "comm/watchdog.h"

namespace shardtrain {

constexpr std::chrono::microseconds kWaitSpin{100};
constexpr std::chrono::microseconds kWaitBusySleep{100};
constexpr std::chrono::milliseconds kWaitBusyPeriod{100};
constexpr std::chrono::microseconds kWaitMaxSleep{1000};
// A gap between two polls this long means this process did not run meanwhile.
constexpr std::chrono::milliseconds kSelfStall{500};

// The pause before the next MPI_Test after waiting `waited` (see above): zero while spinning.
std::chrono::nanoseconds wait_backoff(std::chrono::nanoseconds waited);

// Waits for `*request`, the MPI side of collective `c` of `tracker`'s communicator. OK: it
// completed (*request is MPI_REQUEST_NULL; the caller reports completion). Otherwise the
// request is left active (MPI cannot cancel a collective) and the job must end.
// Thread: the one that issues MPI calls.
Status mpi_wait_watched(MPI_Request* request, const Collective& c, CollectiveTracker& tracker);

}  // namespace shardtrain

// Waiting for a non-blocking MPI collective under the watchdog (comm/watchdog.h).
//
// MPI's blocking calls have no timeout, and Open MPI's MPI_Wait busy-polls: a rank whose
// peer is stopped burns a whole core for ever. Here a wait polls MPI_Test (which also
// drives the collective's progress) and sleeps between polls: it spins for the first
// kWaitSpin, so a peer that arrives promptly costs nothing, then sleeps for 1/8 of the time
// waited so far, at most kWaitMaxSleep, so a late peer adds at most about 1/8 to the wait
// and a rank that waits for long polls 1000 times a second (a fraction of a percent of a
// core). Each poll tells the peers this rank is alive (progress_board.h). The wait ends
// when the collective completes, when it is overdue (expired, which names it; time this
// process itself was stopped does not count), or when another collective of the job has
// failed (the job is going down).
#pragma once

#include <mpi.h>

#include <chrono>

#include "comm/watchdog.h"

namespace shardtrain {

constexpr std::chrono::microseconds kWaitSpin{200};
constexpr std::chrono::microseconds kWaitMaxSleep{1000};
// A gap between two polls this long means this process did not run meanwhile.
constexpr std::chrono::milliseconds kSelfStall{500};

// The pause before the next MPI_Test after waiting `waited`: zero while spinning.
std::chrono::nanoseconds wait_backoff(std::chrono::nanoseconds waited);

// Waits for `*request`, the MPI side of collective `c` of `tracker`'s communicator. OK: it
// completed (*request is MPI_REQUEST_NULL; the caller reports completion). Otherwise the
// request is left active (MPI cannot cancel a collective) and the job must end.
// Thread: the one that issues MPI calls.
Status mpi_wait_watched(MPI_Request* request, const Collective& c, CollectiveTracker& tracker);

}  // namespace shardtrain

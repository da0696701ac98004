// Agreeing on failure during setup.
//
// Errors found while setting up (config, data file, checkpoint) are usually seen by every
// rank at once. Instead of N identical lines or an MPI_Abort banner, ranks agree: each
// contributes whether it failed; if any did, every rank returns the error of the lowest
// failing rank (its message is sent to all), so one rank prints one line and every rank
// exits with the same code. REQUIRES: every rank calls it at the same point.
#pragma once

#include <string>

#include "comm/communicator.h"

namespace shardtrain {

// Returns OK when every rank passed OK; otherwise the lowest failing rank's Status on
// every rank. If the agreement itself fails, returns that failure.
Status agree_on_status(Communicator& comm, const Status& local);

// *text of rank `root` copied to every rank (length first, then the bytes).
Status broadcast_string(Communicator& comm, std::string* text, int root);

}  // namespace shardtrain

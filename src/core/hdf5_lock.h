// Debian's parallel HDF5 is not built thread-safe, and the data loader reads on a
// background thread while the trainer may write a checkpoint or read the test split.
// Every HDF5 call site in shardtrain holds this one process-wide lock.
#pragma once

#include <mutex>

namespace shardtrain {
std::mutex& hdf5_mutex();
}  // namespace shardtrain

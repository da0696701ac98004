// The backend factory. make_backend.cc is the only file that knows which backends were
// compiled in (SHARDTRAIN_CUDA).
#pragma once

#include <memory>

#include "backend/backend.h"

namespace shardtrain {

struct BackendOptions {
  Device device = Device::kCpu;
  int threads = 1;        // CPU threads (OpenMP + OpenBLAS)
  int local_rank = 0;     // picks the GPU: local_rank % device count
};

// Unavailable when the device was not compiled in or no device is usable.
StatusOr<std::unique_ptr<Backend>> make_backend(const BackendOptions& opts);

}  // namespace shardtrain

#include "core/hdf5_lock.h"

namespace shardtrain {
std::mutex& hdf5_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace shardtrain

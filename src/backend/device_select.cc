#include "backend/device_select.h"

namespace shardtrain {

StatusOr<int> select_cuda_device(int local_rank, int device_count, const std::string& probe_error) {
  if (local_rank < 0) return Status::InvalidArgument("local rank " + std::to_string(local_rank) + " is negative");
  if (device_count <= 0 || !probe_error.empty()) {
    std::string why = probe_error.empty() ? "the CUDA runtime sees 0 devices" : probe_error;
    return Status::Unavailable("device=cuda but no usable GPU on this node (" + why +
                               "; check nvidia-smi and CUDA_VISIBLE_DEVICES, or run with device=cpu)");
  }
  return local_rank % device_count;
}

}  // namespace shardtrain

// The NCCL factory of a build without CUDA (-DSHARDTRAIN_CUDA=OFF): answers Unavailable,
// so comm/ needs no #if. choose_comm never picks NCCL here; this is the backstop.
#include "comm/nccl/nccl_communicator.h"

namespace shardtrain {

bool nccl_built() { return false; }

StatusOr<std::unique_ptr<Communicator>> make_nccl_communicator(Backend& /*backend*/, MPI_Comm /*comm*/,
                                                               std::shared_ptr<Watchdog> /*watchdog*/,
                                                               const std::string& /*label*/) {
  return Status::Unavailable("this build has no NCCL (built with -DSHARDTRAIN_CUDA=OFF)");
}

}  // namespace shardtrain

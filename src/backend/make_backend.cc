#include "backend/make_backend.h"

#include "backend/cpu/cpu_backend.h"

namespace shardtrain {

StatusOr<std::unique_ptr<Backend>> make_backend(const BackendOptions& opts) {
  switch (opts.device) {
    case Device::kCpu:
      return std::unique_ptr<Backend>(new CpuBackend(opts.threads));
    case Device::kCuda:
#if SHARDTRAIN_CUDA
      // The CUDA backend (kernels/, backend/cuda/) is the next issue; the build option
      // and this branch are where it plugs in.
      return Status::Unavailable("device=cuda: the CUDA backend is not implemented in this build yet");
#else
      return Status::Unavailable("device=cuda: shardtrain was built with -DSHARDTRAIN_CUDA=OFF");
#endif
  }
  return Status::InvalidArgument("unknown device");
}

}  // namespace shardtrain

#include "backend/make_backend.h"

#include "backend/cpu/cpu_backend.h"
#if SHARDTRAIN_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace shardtrain {

StatusOr<std::unique_ptr<Backend>> make_backend(const BackendOptions& opts) {
  switch (opts.device) {
    case Device::kCpu:
      return std::unique_ptr<Backend>(new CpuBackend(opts.threads));
    case Device::kCuda: {
#if SHARDTRAIN_CUDA
      // Unavailable (with the reason) when this node has no usable GPU.
      ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> cuda, CudaBackend::create(opts.local_rank));
      return std::unique_ptr<Backend>(std::move(cuda));
#else
      return Status::Unavailable("device=cuda: shardtrain was built with -DSHARDTRAIN_CUDA=OFF");
#endif
    }
  }
  return Status::InvalidArgument("unknown device");
}

}  // namespace shardtrain

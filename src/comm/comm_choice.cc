#include "comm/comm_choice.h"

namespace shardtrain {

const char* comm_kind_name(CommKind k) {
  switch (k) {
    case CommKind::kMpi: return "mpi";
    case CommKind::kMpiHostStaged: return "mpi (host-staged)";
    case CommKind::kNccl: return "nccl";
  }
  return "unknown";
}

std::optional<std::pair<int, int>> find_shared_device(const std::vector<std::string>& identities) {
  // Quadratic, but over ranks of one job and only once at startup; returns the pair with
  // the smallest r (then s), which keeps the message the same on every rank.
  const int n = static_cast<int>(identities.size());
  for (int r = 0; r < n; ++r)
    for (int s = r + 1; s < n; ++s)
      if (identities[r] == identities[s]) return std::make_pair(r, s);
  return std::nullopt;
}

StatusOr<CommChoice> choose_comm(config::CommConfig::Backend requested, Device device, bool nccl_built,
                                 const std::vector<std::string>& identities) {
  // CPU buffers: plain MPI (validation already rejected NCCL with device=cpu).
  if (device == Device::kCpu) return CommChoice{CommKind::kMpi, ""};
  if (requested == config::CommConfig::BACKEND_MPI) return CommChoice{CommKind::kMpiHostStaged, ""};

  const auto shared = find_shared_device(identities);
  const std::string shared_text =
      shared ? "ranks " + std::to_string(shared->first) + " and " + std::to_string(shared->second) +
                   " share GPU " + identities[shared->first]
             : "";
  if (requested == config::CommConfig::BACKEND_NCCL) {
    if (!nccl_built) return Status::Unavailable("comm.backend=NCCL but this build has no NCCL (-DSHARDTRAIN_CUDA=OFF)");
    if (shared)
      return Status::InvalidArgument("comm.backend=NCCL: " + shared_text +
                                     " (NCCL needs one GPU per rank): use comm.backend=AUTO or MPI, or fewer "
                                     "ranks per node");
    return CommChoice{CommKind::kNccl, ""};
  }

  // AUTO: NCCL when it can run, else host-staged MPI with one line saying why.
  if (shared)
    return CommChoice{CommKind::kMpiHostStaged,
                      shared_text + ": NCCL cannot run two ranks on one GPU, using MPI with host staging instead"};
  if (!nccl_built)
    return CommChoice{CommKind::kMpiHostStaged,
                      "this build has no NCCL (-DSHARDTRAIN_CUDA=OFF): using MPI with host staging"};
  return CommChoice{CommKind::kNccl, ""};
}

}  // namespace shardtrain

// Which communicator carries a job's device buffers: the pure decision, tested without a
// GPU or MPI. comm/make_communicator.cc gathers the inputs and builds the choice.
//
//   device=cpu : MPI. (comm.backend=NCCL is rejected by config validation.)
//   device=cuda: NCCL, unless two ranks share a GPU: NCCL refuses two ranks on one device,
//                so AUTO falls back to MPI with host staging (and says so once), and an
//                explicit NCCL is an error naming the two ranks. MPI: host-staged MPI.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/shardtrain.pb.h"
#include "core/status.h"
#include "core/tensor.h"

namespace shardtrain {

enum class CommKind { kMpi, kMpiHostStaged, kNccl };
const char* comm_kind_name(CommKind k);  // "mpi", "mpi (host-staged)", "nccl"

// identities[r] is rank r's "<hostname>/<device identity>" (Backend::device_identity()).
// Returns the first pair (r, s), r < s, with equal identities; nullopt if all differ.
std::optional<std::pair<int, int>> find_shared_device(const std::vector<std::string>& identities);

struct CommChoice {
  CommKind kind;
  std::string note;  // the one line rank 0 logs about a fallback ("" when none)
};

StatusOr<CommChoice> choose_comm(config::CommConfig::Backend requested, Device device, bool nccl_built,
                                 const std::vector<std::string>& identities);

}  // namespace shardtrain

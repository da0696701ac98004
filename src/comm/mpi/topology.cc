#include "comm/mpi/topology.h"

#include <unistd.h>

#include <cstdlib>

#include "core/check.h"

namespace shardtrain {
namespace {

bool env_int(const char* name, int* out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return false;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0) return false;
  *out = static_cast<int>(x);
  return true;
}

}  // namespace

StatusOr<Topology> discover_topology(MPI_Comm comm) {
  Topology t;
  auto query = [&]() -> Status {
    MPI_CHECK(MPI_Comm_rank(comm, &t.rank));
    MPI_CHECK(MPI_Comm_size(comm, &t.world_size));
    // Ranks sharing this node; the launcher's environment, when present, takes precedence.
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, t.rank, MPI_INFO_NULL, &node));
    int node_rank = 0, node_size = 1;
    MPI_CHECK(MPI_Comm_rank(node, &node_rank));
    MPI_CHECK(MPI_Comm_size(node, &node_size));
    MPI_CHECK(MPI_Comm_free(&node));
    t.local_rank = node_rank;
    t.local_size = node_size;
    t.source = "MPI shared-memory split";
    int r = 0, s = 0;
    if (env_int("OMPI_COMM_WORLD_LOCAL_RANK", &r) && env_int("OMPI_COMM_WORLD_LOCAL_SIZE", &s)) {
      t.local_rank = r, t.local_size = s, t.source = "OMPI env";
    } else if (env_int("SLURM_LOCALID", &r)) {
      t.local_rank = r, t.source = "SLURM env";  // local size from the split
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(query());
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) == 0) t.hostname = host;
  return t;
}

}  // namespace shardtrain

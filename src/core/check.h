// Checks for every library call. Each macro turns a failed call into a returned Status
// naming the call, the file and the line; none of them exits or throws.
//
//   MPI_CHECK(MPI_Allreduce(...));            // in a function returning Status
//   H5_CHECK(H5Dread(...), "reading " + name); // HDF5 calls return < 0 on failure
//
// CUDA_CHECK / NCCL_CHECK live in backend/cuda and comm/nccl so this header stays free of
// CUDA includes.
#pragma once

#include <string>

#include "core/status.h"

namespace shardtrain {
std::string mpi_error_string(int code);
std::string where(const char* file, int line);
}  // namespace shardtrain

#define MPI_CHECK(call)                                                              \
  do {                                                                               \
    int st_mpi_rc_ = (call);                                                         \
    if (st_mpi_rc_ != 0 /* MPI_SUCCESS */)                                           \
      return ::shardtrain::Status::Internal(std::string(#call) + " failed: " +       \
                                            ::shardtrain::mpi_error_string(st_mpi_rc_) + \
                                            " (" + ::shardtrain::where(__FILE__, __LINE__) + ")"); \
  } while (0)

// HDF5 calls return a negative value on failure. `what` is a message naming the file and
// object involved (evaluated only on failure).
#define H5_CHECK(call, what)                                                         \
  do {                                                                               \
    if ((call) < 0) return ::shardtrain::Status::DataLoss(std::string(what));        \
  } while (0)

// Internal invariant: a programming error, not a user error. Returns kInternal.
#define ST_CHECK(cond, msg)                                                          \
  do {                                                                               \
    if (!(cond))                                                                     \
      return ::shardtrain::Status::Internal(std::string("check failed: ") + #cond + ": " + \
                                            (msg) + " (" + ::shardtrain::where(__FILE__, __LINE__) + ")"); \
  } while (0)

// NCCL error checks, in the style of MPI_CHECK (core/check.h) and CUDA_CHECK
// (backend/cuda/cuda_check.h): a failed call becomes a Status naming the call, NCCL's
// error string, NCCL's last-error text (which says what actually went wrong: a peer that
// vanished, a socket error, ...) and file:line.
//
//   NCCL_CHECK(ncclGetUniqueId(&id));                  // returns on failure
//   Status st = NCCL_STATUS(ncclCommDestroy(comm));    // OK or the error
//
// ncclInProgress is an error here: calls on a non-blocking communicator that may return
// it (init, collectives, finalize) are polled by their caller instead of checked.
// Header-only so comm/nccl needs no extra source file; include only where nccl.h is usable.
#pragma once

#include <nccl.h>

#include <string>

#include "core/check.h"
#include "core/status.h"

namespace shardtrain {

// "ncclUnhandledCudaError (unhandled cuda error ...): <last error>"; the last-error text
// is NCCL's process-wide one (the comm argument is unused), so it may belong to an
// earlier asynchronous failure; it is still the best explanation NCCL offers.
inline std::string nccl_error_text(ncclResult_t r) {
  std::string text = ncclGetErrorString(r);
  const char* last = ncclGetLastError(nullptr);
  if (last != nullptr && *last != '\0') text += std::string(": ") + last;
  return text;
}

inline Status nccl_status(ncclResult_t r, const char* call, const char* file, int line) {
  if (r == ncclSuccess) return Status::Ok();
  return Status::Internal(std::string(call) + " failed: " + nccl_error_text(r) + " (" + where(file, line) + ")");
}

}  // namespace shardtrain

#define NCCL_STATUS(call) ::shardtrain::nccl_status((call), #call, __FILE__, __LINE__)
#define NCCL_CHECK(call) RETURN_IF_ERROR(NCCL_STATUS(call))

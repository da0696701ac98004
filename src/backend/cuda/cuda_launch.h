// ST_LAUNCH, shared by the files that implement CudaBackend's compute primitives. Private
// to src/backend/cuda: it expands to member calls (failed(), record()).
#pragma once

#include <cuda_runtime_api.h>

#include "backend/cuda/cuda_check.h"

// Issues `call` (a launcher returning cudaError_t) for `primitive` unless the backend has
// already failed, and records its error. Launchers return cudaSuccess for empty inputs.
// The thread's last-error slot is cleared first: a launcher reports cudaGetLastError(),
// and an error another library (NCCL's enqueue on this thread) left there must not be
// blamed on this primitive. Sticky device faults survive the clearing.
#define ST_LAUNCH(primitive, call)     \
  do {                                 \
    if (!failed()) {                   \
      (void)cudaGetLastError();        \
      record(primitive, CUDA_STATUS(call)); \
    }                                  \
  } while (0)

// CUDA and cuBLAS error checks. Like MPI_CHECK (core/check.h), each turns a failed call
// into a Status naming the call, the library's error name and text, and file:line:
//
//   CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));  // returns on failure
//   Status st = CUDA_STATUS(cudaMemcpyAsync(...));                    // OK or the error
//
// The *_STATUS forms do not return; the CUDA backend feeds them to its sticky-error
// recorder, because its primitives return void (backend/backend.h).
//
// A failing runtime call also leaves the error in the thread's "last error" slot, where a
// later kernel launcher's cudaGetLastError() would report it as its own failure. Every
// helper here clears that slot when it sees an error, so each error is reported once, by
// the call that caused it. (Sticky device faults, e.g. an illegal address, are not cleared
// by this and keep failing every later call, which is what they should do.)
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "core/status.h"

namespace shardtrain {

// OK for cudaSuccess; otherwise "<call> failed: <cudaErrorName> (<text>) (<file:line>)".
// Unavailable for errors that mean "no usable device here" (no device, driver too old,
// device busy in exclusive mode), Internal for everything else.
Status cuda_status(cudaError_t err, const char* call, const char* file, int line);
// OK for CUBLAS_STATUS_SUCCESS; otherwise Internal, formatted as cuda_status.
Status cublas_status(cublasStatus_t st, const char* call, const char* file, int line);
// "cudaErrorInvalidValue (invalid argument)"; also clears the thread's last error.
std::string cuda_error_text(cudaError_t err);

}  // namespace shardtrain

#define CUDA_STATUS(call) ::shardtrain::cuda_status((call), #call, __FILE__, __LINE__)
#define CUBLAS_STATUS(call) ::shardtrain::cublas_status((call), #call, __FILE__, __LINE__)

// For functions returning Status (or StatusOr): return the error if `call` failed.
#define CUDA_CHECK(call) RETURN_IF_ERROR(CUDA_STATUS(call))
#define CUBLAS_CHECK(call) RETURN_IF_ERROR(CUBLAS_STATUS(call))

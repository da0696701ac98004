#include "backend/cuda/cuda_check.h"

#include <string>

#include "core/check.h"

namespace shardtrain {

std::string cuda_error_text(cudaError_t err) {
  // Reading the error does not reset it; this does, so the next launcher's
  // cudaGetLastError() does not report an error that was already handled.
  if (err != cudaSuccess) (void)cudaGetLastError();
  return std::string(cudaGetErrorName(err)) + " (" + cudaGetErrorString(err) + ")";
}

Status cuda_status(cudaError_t err, const char* call, const char* file, int line) {
  if (err == cudaSuccess) return Status::Ok();
  std::string msg = std::string(call) + " failed: " + cuda_error_text(err) + " (" + where(file, line) + ")";
  switch (err) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorDevicesUnavailable:
      return Status::Unavailable(std::move(msg));
    default:
      return Status::Internal(std::move(msg));
  }
}

Status cublas_status(cublasStatus_t st, const char* call, const char* file, int line) {
  if (st == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  // cuBLAS reports a failed kernel launch as CUBLAS_STATUS_EXECUTION_FAILED and leaves the
  // CUDA error in the last-error slot; clear it so it is reported once, here.
  (void)cudaGetLastError();
  return Status::Internal(std::string(call) + " failed: " + cublasGetStatusName(st) + " (" +
                          cublasGetStatusString(st) + ") (" + where(file, line) + ")");
}

}  // namespace shardtrain

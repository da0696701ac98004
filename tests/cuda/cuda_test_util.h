// Shared by the GPU tests: skip (with the reason) when this machine has no usable GPU,
// so the suite passes on CPU-only machines such as CI while still compiling every test.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <string>

namespace shardtrain::testing {

// "" when a GPU is usable, else why not.
inline std::string cuda_unusable_reason() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return std::string("no usable GPU: ") + cudaGetErrorString(err);
  if (count == 0) return "no usable GPU: the CUDA runtime sees 0 devices";
  return "";
}

}  // namespace shardtrain::testing

#define ST_SKIP_WITHOUT_GPU()                                                      \
  do {                                                                             \
    const std::string st_reason_ = ::shardtrain::testing::cuda_unusable_reason(); \
    if (!st_reason_.empty()) GTEST_SKIP() << st_reason_;                           \
  } while (0)

// Moving test data between host vectors and backend tensors.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace shardtrain {
namespace testing {

inline std::vector<float> to_host(Backend& be, const Tensor& t) {
  std::vector<float> h(t.numel());
  be.copy_to_host(t, h.data());
  return h;
}

inline Tensor from_host(Backend& be, const Shape& s, const std::vector<float>& v) {
  Tensor t = be.alloc(s, DType::kFloat32);
  be.copy_from_host(t, v.data());
  return t;
}

inline Tensor ids_from_host(Backend& be, const std::vector<int32_t>& v) {
  Tensor t = be.alloc({static_cast<int64_t>(v.size())}, DType::kInt32);
  be.copy_from_host(t, v.data());
  return t;
}

}  // namespace testing
}  // namespace shardtrain

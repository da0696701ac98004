// Small helpers shared by the layer implementations: how errors name a layer, and
// grow-only scratch buffers.
#pragma once

#include <string>

#include "backend/backend.h"
#include "core/status.h"
#include "core/tensor.h"
#include "layers/layer.h"

namespace shardtrain {

// "model.layer[3] (fc1)": how every configuration error names its layer.
inline std::string layer_where(int index, const std::string& name) {
  return "model.layer[" + std::to_string(index) + "] (" + name + ")";
}

// A backend buffer that is allocated on first use and reused across steps. It only grows,
// so alternating training and (larger) evaluation batches does not reallocate every call.
class ScratchBuffer {
 public:
  // Returns a buffer of at least `numel` elements of `dtype` (contents unspecified).
  Tensor& get(Backend& be, int64_t numel, DType dtype = DType::kFloat32) {
    if (!buf_.defined() || buf_.numel() < numel || buf_.dtype() != dtype) buf_ = be.alloc({numel}, dtype);
    return buf_;
  }

 private:
  Tensor buf_;
};

}  // namespace shardtrain

// Flatten: [C, H, W] (any per-sample shape) -> [C*H*W]. Data are already contiguous, so
// forward and backward are copies into the Model's separately allocated tensors.
#pragma once

#include "layers/layer.h"

namespace shardtrain {

class FlattenLayer final : public UnaryLayer {
 public:
  FlattenLayer(std::string name, Backend& backend) : UnaryLayer(std::move(name), backend) {}
  const char* type() const override { return "flatten"; }

 protected:
  StatusOr<Shape> configure_one(const Shape& in_shape) override { return Shape{shape_numel(in_shape)}; }
  void forward_one(const ForwardContext&, const Tensor& x, Tensor& y) override { be_.copy(x, y); }
  void backward_one(const ForwardContext&, const Tensor&, const Tensor&, const Tensor& dy, Tensor* dx) override {
    if (dx) be_.copy(dy, *dx);
  }
};

}  // namespace shardtrain

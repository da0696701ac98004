// Elementwise activations (ReLU, exact GELU): one class parameterised by Activation, so a
// new activation is a backend primitive plus one registry line.
#pragma once

#include "layers/layer.h"

namespace shardtrain {

class ActivationLayer final : public UnaryLayer {
 public:
  ActivationLayer(std::string name, Backend& backend, Activation act)
      : UnaryLayer(std::move(name), backend), act_(act) {}
  const char* type() const override;  // "relu", "gelu"

 protected:
  StatusOr<Shape> configure_one(const Shape& in_shape) override { return in_shape; }
  void forward_one(const ForwardContext& ctx, const Tensor& x, Tensor& y) override;
  void backward_one(const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy,
                    Tensor* dx) override;

 private:
  Activation act_;
};

}  // namespace shardtrain

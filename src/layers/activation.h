// Elementwise activations (ReLU, exact GELU): one class parameterised by Activation, so a
// new activation is a backend primitive plus one registry line.
#pragma once

#include "layers/layer.h"

namespace shardtrain {

class ActivationLayer final : public Layer {
 public:
  ActivationLayer(std::string name, Backend& backend, Activation act)
      : Layer(std::move(name), backend), act_(act) {}
  const char* type() const override;  // "relu", "gelu"
  StatusOr<Shape> configure(const Shape& in_shape) override { return in_shape; }
  void forward(const ForwardContext& ctx, const Tensor& x, Tensor& y) override;
  void backward(const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;

 private:
  Activation act_;
};

}  // namespace shardtrain

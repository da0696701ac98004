// Linear: y = x W^T + b over a flat [D] sample, as torch.nn.Linear (weight [out, in]).
#pragma once

#include "layers/layer.h"

namespace shardtrain {

class LinearLayer final : public Layer {
 public:
  LinearLayer(std::string name, Backend& backend, int64_t out_features, bool bias)
      : Layer(std::move(name), backend), out_(out_features), bias_(bias) {}
  const char* type() const override { return "linear"; }

  // REQUIRES in_shape == [in_features]: a multi-dimensional input needs a flatten first.
  StatusOr<Shape> configure(const Shape& in_shape) override;
  std::vector<ParamSpec> param_specs() const override;
  void forward(const ForwardContext& ctx, const Tensor& x, Tensor& y) override;
  void backward(const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;

 private:
  int64_t in_ = 0, out_;
  bool bias_;
};

}  // namespace shardtrain

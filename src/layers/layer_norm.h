// LayerNorm over the last dimension, as torch.nn.LayerNorm(D, eps) with weight (ones) and
// bias (zeros). Statistics stay fp32; forward keeps them for backward.
#pragma once

#include "layers/layer.h"
#include "layers/layer_util.h"

namespace shardtrain {

class LayerNormLayer final : public UnaryLayer {
 public:
  LayerNormLayer(std::string name, Backend& backend, float eps) : UnaryLayer(std::move(name), backend), eps_(eps) {}
  const char* type() const override { return "layer_norm"; }

 protected:
  StatusOr<Shape> configure_one(const Shape& in_shape) override;
  void forward_one(const ForwardContext& ctx, const Tensor& x, Tensor& y) override;
  void backward_one(const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy,
                    Tensor* dx) override;

 private:
  float eps_;
  int64_t dim_ = 0;
  ScratchBuffer mean_, rstd_, dx_;  // [rows] each; dx_ only when no input gradient is wanted
};

}  // namespace shardtrain

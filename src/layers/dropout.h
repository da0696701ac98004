// Dropout (inverted): in training y = x * keep / (1 - p), identity in evaluation.
//
// The mask is drawn from a counter-based RNG keyed by (job seed, layer index and step,
// global element index), so it is the same whether a global batch runs on one rank or is
// split over many, and a resumed run draws the same masks as the original.
#pragma once

#include "layers/layer.h"

namespace shardtrain {

class DropoutLayer final : public Layer {
 public:
  DropoutLayer(std::string name, Backend& backend, float p) : Layer(std::move(name), backend), p_(p) {}
  const char* type() const override { return "dropout"; }
  StatusOr<Shape> configure(const Shape& in_shape) override;
  void forward(const ForwardContext& ctx, const Tensor& x, Tensor& y) override;
  void backward(const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;

 private:
  // Key of this layer at ctx.step for this rank's slice of the batch.
  DropoutKey key(const ForwardContext& ctx) const;
  float p_;
  int64_t per_sample_ = 0;
};

}  // namespace shardtrain

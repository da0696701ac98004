// Dropout (inverted): in training y = x * keep / (1 - p), identity in evaluation.
//
// The mask is drawn from a counter-based RNG keyed by (job seed, layer index and step,
// global element index), so it is the same whether a global batch runs on one rank or is
// split over many, and a resumed run draws the same masks as the original.
#pragma once

#include "layers/layer.h"

namespace shardtrain {

class DropoutLayer final : public UnaryLayer {
 public:
  DropoutLayer(std::string name, Backend& backend, float p) : UnaryLayer(std::move(name), backend), p_(p) {}
  const char* type() const override { return "dropout"; }

 protected:
  StatusOr<Shape> configure_one(const Shape& in_shape) override;
  void forward_one(const ForwardContext& ctx, const Tensor& x, Tensor& y) override;
  void backward_one(const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy,
                    Tensor* dx) override;

 private:
  // Key of this layer at ctx.step for this rank's slice of the batch.
  DropoutKey key(const ForwardContext& ctx) const;
  float p_;
  int64_t per_sample_ = 0;
};

}  // namespace shardtrain

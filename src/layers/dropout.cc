#include "layers/dropout.h"

#include "core/counter_rng.h"

namespace shardtrain {

StatusOr<Shape> DropoutLayer::configure_one(const Shape& in_shape) {
  per_sample_ = shape_numel(in_shape);
  return in_shape;
}

DropoutKey DropoutLayer::key(const ForwardContext& ctx) const {
  // Element i of this rank's slice is global element sample_offset * per_sample + i.
  const uint64_t layer_step = counter_rng_hash2(static_cast<uint64_t>(index()), static_cast<uint64_t>(ctx.step));
  return DropoutKey{ctx.seed, counter_rng_hash2(kCounterRngDropout, layer_step),
                    static_cast<uint64_t>(ctx.sample_offset * per_sample_)};
}

void DropoutLayer::forward_one(const ForwardContext& ctx, const Tensor& x, Tensor& y) {
  if (!ctx.training || p_ <= 0.0f) {
    be_.copy(x, y);
    return;
  }
  be_.dropout(x, y, p_, key(ctx));
}

// The same mask and scale applied to dy is the exact backward.
void DropoutLayer::backward_one(const ForwardContext& ctx, const Tensor&, const Tensor&, const Tensor& dy, Tensor* dx) {
  if (!dx) return;
  if (!ctx.training || p_ <= 0.0f) {
    be_.copy(dy, *dx);
    return;
  }
  be_.dropout(dy, *dx, p_, key(ctx));
}

}  // namespace shardtrain

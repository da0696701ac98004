// MaxPool2d: [C, H, W] -> [C, Ho, Wo], no padding, as torch.nn.MaxPool2d (stride defaults
// to the kernel size). Forward records each window's argmax so backward is a scatter;
// backward recomputes it only if handed a different input than the last forward saw.
#pragma once

#include "layers/layer.h"
#include "layers/layer_util.h"

namespace shardtrain {

class MaxPool2dLayer final : public UnaryLayer {
 public:
  MaxPool2dLayer(std::string name, Backend& backend, int64_t kernel, int64_t stride)
      : UnaryLayer(std::move(name), backend), kernel_(kernel), stride_(stride) {}
  const char* type() const override { return "max_pool2d"; }

 protected:
  StatusOr<Shape> configure_one(const Shape& in_shape) override;
  bool supports_bf16() const override { return false; }
  void forward_one(const ForwardContext& ctx, const Tensor& x, Tensor& y) override;
  void backward_one(const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy,
                    Tensor* dx) override;

 private:
  PoolGeometry geometry(int64_t batch) const;
  int64_t kernel_, stride_;
  Shape in_;
  ScratchBuffer argmax_;  // int32 [N, C, Ho, Wo]
  ScratchBuffer y_tmp_;   // only for recomputing the argmax in backward
  const float* argmax_for_ = nullptr;
  int64_t argmax_batch_ = 0;
};

}  // namespace shardtrain

#include "layers/max_pool2d.h"

namespace shardtrain {

StatusOr<Shape> MaxPool2dLayer::configure_one(const Shape& in) {
  if (in.size() != 3)
    return error("max_pool2d expects a [C, H, W] input, got " + shape_str(in));
  if (kernel_ > in[1] || kernel_ > in[2])
    return error("kernel " + std::to_string(kernel_) + " larger than input " + std::to_string(in[1]) +
                                  "x" + std::to_string(in[2]));
  in_ = in;
  PoolGeometry g = geometry(1);
  return Shape{in[0], g.out_height, g.out_width};
}

PoolGeometry MaxPool2dLayer::geometry(int64_t batch) const {
  return PoolGeometry{batch, in_[0], in_[1], in_[2], kernel_, stride_, (in_[1] - kernel_) / stride_ + 1,
                      (in_[2] - kernel_) / stride_ + 1};
}

void MaxPool2dLayer::forward_one(const ForwardContext&, const Tensor& x, Tensor& y) {
  const PoolGeometry g = geometry(x.dim(0));
  int32_t* argmax = argmax_.get(be_, y.numel(), DType::kInt32).data<int32_t>();
  be_.maxpool2d_forward(x.f32(), g, y.f32(), argmax);
  argmax_for_ = x.f32();
  argmax_batch_ = g.batch;
}

void MaxPool2dLayer::backward_one(const ForwardContext&, const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) {
  if (!dx) return;
  const PoolGeometry g = geometry(x.dim(0));
  int32_t* argmax = argmax_.get(be_, dy.numel(), DType::kInt32).data<int32_t>();
  if (argmax_for_ != x.f32() || argmax_batch_ != g.batch) {
    be_.maxpool2d_forward(x.f32(), g, y_tmp_.get(be_, dy.numel()).f32(), argmax);
    argmax_for_ = x.f32();
    argmax_batch_ = g.batch;
  }
  be_.maxpool2d_backward(dy.f32(), argmax, g, dx->f32());
}

}  // namespace shardtrain

#include "layers/linear.h"

#include "layers/layer_util.h"

namespace shardtrain {

StatusOr<Shape> LinearLayer::configure(const Shape& in_shape) {
  if (in_shape.size() != 1)
    return layer_error(*this, "linear expects a flat [D] input, got " + shape_str(in_shape) + ": add a flatten layer");
  in_ = in_shape[0];
  return Shape{out_};
}

std::vector<ParamSpec> LinearLayer::param_specs() const {
  std::vector<ParamSpec> specs{{"weight", {out_, in_}, in_}};
  if (bias_) specs.push_back({"bias", {out_}, in_});
  return specs;
}

void LinearLayer::forward(const ForwardContext&, const Tensor& x, Tensor& y) {
  const int64_t n = x.dim(0);
  // y[n, out] = x[n, in] * W[out, in]^T
  be_.gemm(GemmOp::kNoTrans, GemmOp::kTrans, n, out_, in_, 1.0f, x.f32(), params_[0].f32(), 0.0f, y.f32());
  if (bias_) be_.bias_add(y.f32(), params_[1].f32(), n, out_, 1);
}

void LinearLayer::backward(const ForwardContext&, const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) {
  const int64_t n = x.dim(0);
  // dW[out, in] = dy[n, out]^T * x[n, in]; beta = 0 overwrites the gradient.
  be_.gemm(GemmOp::kTrans, GemmOp::kNoTrans, out_, in_, n, 1.0f, dy.f32(), x.f32(), 0.0f, grads_[0].f32());
  if (bias_) be_.bias_grad(dy.f32(), grads_[1].f32(), n, out_, 1);
  // dx[n, in] = dy[n, out] * W[out, in]
  if (dx) be_.gemm(GemmOp::kNoTrans, GemmOp::kNoTrans, n, in_, out_, 1.0f, dy.f32(), params_[0].f32(), 0.0f, dx->f32());
}

}  // namespace shardtrain

#include "layers/linear.h"

namespace shardtrain {

StatusOr<Shape> LinearLayer::configure_one(const Shape& in_shape) {
  if (in_shape.empty() || in_shape.size() > 2)
    return error("linear expects a [D] or [T, D] input, got " + shape_str(in_shape) + ": add a flatten layer");
  in_ = in_shape.back();
  if (!tied_to_.empty()) {
    RETURN_IF_ERROR(use_param(*store_, tied_to_));
    const Shape& w = store_->params()[param_ids_[0]].shape;
    if (w.size() != 2 || w[1] != in_)
      return error("tied weight " + tied_to_ + " is " + shape_str(w) + " but must be [V, " + std::to_string(in_) +
                   "]: a row of the input's " + std::to_string(in_) + " features per output (token table)");
    out_ = w[0];
    Shape out = in_shape;
    out.back() = out_;
    return out;
  }
  const bool gpt2_init = init_std_ > 0;
  RETURN_IF_ERROR(declare("weight", {out_, in_}, gpt2_init ? ParamInit::Normal(init_std_) : ParamInit::UniformFanIn(in_)));
  if (bias_) RETURN_IF_ERROR(declare("bias", {out_}, gpt2_init ? ParamInit::Zeros() : ParamInit::UniformFanIn(in_)));
  Shape out = in_shape;
  out.back() = out_;
  return out;
}

void LinearLayer::forward_one(const ForwardContext&, const Tensor& x, Tensor& y) {
  const int64_t n = x.numel() / in_;  // rows: samples x positions
  if (gelu_tanh_) {
    Tensor pre = pre_.get(be_, n * out_, y.dtype()).slice(0, y.shape());
    be_.linear_act_forward(x, param(0), bias_ ? param(1) : Tensor(), Activation::kGeluTanh, n, in_, out_, pre, y);
    return;
  }
  // y[n, out] = x[n, in] * W[out, in]^T
  be_.gemm(GemmOp::kNoTrans, GemmOp::kTrans, n, out_, in_, 1.0f, x, param(0), 0.0f, y);
  if (bias_) be_.bias_add(y, param(1), n, out_, 1);
}

void LinearLayer::backward_one(const ForwardContext&, const Tensor& x, const Tensor& y, const Tensor& dy_out,
                               Tensor* dx) {
  const int64_t n = x.numel() / in_;
  // With an activation, what the linear part sees is the gradient of the pre-activation.
  Tensor dpre;
  if (gelu_tanh_) {
    dpre = dpre_.get(be_, n * out_, y.dtype()).slice(0, y.shape());
    be_.activation_backward(Activation::kGeluTanh, pre_.get(be_, n * out_, y.dtype()).slice(0, y.shape()), dy_out,
                            dpre);
  }
  const Tensor& dy = gelu_tanh_ ? dpre : dy_out;
  // dW[out, in] += dy[n, out]^T * x[n, in] (beta = 1: gradients accumulate, in fp32 also
  // when dy and x are bf16).
  be_.gemm(GemmOp::kTrans, GemmOp::kNoTrans, out_, in_, n, 1.0f, dy, x, 1.0f, grad(0));
  if (bias_) be_.bias_grad(dy, grad(1), n, out_, 1);
  // dx[n, in] = dy[n, out] * W[out, in]
  if (dx) be_.gemm(GemmOp::kNoTrans, GemmOp::kNoTrans, n, in_, out_, 1.0f, dy, param(0), 0.0f, *dx);
}

}  // namespace shardtrain

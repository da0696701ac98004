#include "layers/layer_norm.h"

namespace shardtrain {

StatusOr<Shape> LayerNormLayer::configure_one(const Shape& in) {
  if (in.empty()) return error("layer_norm needs at least one dimension");
  dim_ = in.back();
  RETURN_IF_ERROR(declare("weight", {dim_}, ParamInit::Ones()));
  RETURN_IF_ERROR(declare("bias", {dim_}, ParamInit::Zeros()));
  return in;
}

void LayerNormLayer::forward_one(const ForwardContext&, const Tensor& x, Tensor& y) {
  const int64_t rows = x.numel() / dim_;
  Tensor mean = mean_.get(be_, rows).slice(0, {rows}), rstd = rstd_.get(be_, rows).slice(0, {rows});
  be_.layernorm_forward(x, param(0), param(1), eps_, y, mean, rstd);
}

void LayerNormLayer::backward_one(const ForwardContext&, const Tensor& x, const Tensor&, const Tensor& dy,
                                  Tensor* dx) {
  const int64_t rows = x.numel() / dim_;
  Tensor mean = mean_.get(be_, rows).slice(0, {rows}), rstd = rstd_.get(be_, rows).slice(0, {rows});
  Tensor scratch;
  if (!dx) scratch = dx_.get(be_, x.numel(), x.dtype()).slice(0, x.shape());
  be_.layernorm_backward(dy, x, param(0), mean, rstd, dx ? *dx : scratch, grad(0), grad(1));
}

}  // namespace shardtrain

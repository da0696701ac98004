#include "layers/conv2d.h"

namespace shardtrain {

StatusOr<Shape> Conv2dLayer::configure(const Shape& in) {
  if (in.size() != 3)
    return layer_error(*this, "conv2d expects a [C, H, W] input, got " + shape_str(in));
  const int64_t ph = in[1] + 2 * padding_, pw = in[2] + 2 * padding_;
  if (kernel_ > ph || kernel_ > pw)
    return layer_error(*this, "kernel " + std::to_string(kernel_) + " larger than padded input " +
                                  std::to_string(ph) + "x" + std::to_string(pw));
  g_ = ConvGeometry{in[0], in[1], in[2], kernel_, stride_, padding_, (ph - kernel_) / stride_ + 1,
                    (pw - kernel_) / stride_ + 1};
  return Shape{out_, g_.out_height, g_.out_width};
}

std::vector<ParamSpec> Conv2dLayer::param_specs() const {
  const int64_t fan_in = g_.col_rows();
  std::vector<ParamSpec> specs{{"weight", {out_, g_.channels, kernel_, kernel_}, fan_in}};
  if (bias_) specs.push_back({"bias", {out_}, fan_in});
  return specs;
}

void Conv2dLayer::forward(const ForwardContext&, const Tensor& x, Tensor& y) {
  const int64_t n = x.dim(0), rows = g_.col_rows(), hw = g_.col_cols();
  const int64_t in_sz = g_.channels * g_.height * g_.width, out_sz = out_ * hw;
  float* cols = cols_.get(be_, n * rows * hw).f32();
  for (int64_t i = 0; i < n; ++i) {
    float* c = cols + i * rows * hw;
    be_.im2col(x.f32() + i * in_sz, g_, c);
    // y_i[K, HW] = W[K, rows] * cols_i[rows, HW]
    be_.gemm(GemmOp::kNoTrans, GemmOp::kNoTrans, out_, hw, rows, 1.0f, params_[0].f32(), c, 0.0f,
             y.f32() + i * out_sz);
  }
  if (bias_) be_.bias_add(y.f32(), params_[1].f32(), n, out_, hw);
  cols_for_ = x.f32();
  cols_batch_ = n;
}

void Conv2dLayer::backward(const ForwardContext&, const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) {
  const int64_t n = x.dim(0), rows = g_.col_rows(), hw = g_.col_cols();
  const int64_t in_sz = g_.channels * g_.height * g_.width, out_sz = out_ * hw;
  const bool have_cols = cols_for_ == x.f32() && cols_batch_ == n;
  float* cols = cols_.get(be_, n * rows * hw).f32();
  if (bias_) be_.bias_grad(dy.f32(), grads_[1].f32(), n, out_, hw);
  float* dcols = dx ? dcols_.get(be_, rows * hw).f32() : nullptr;
  for (int64_t i = 0; i < n; ++i) {
    float* c = cols + i * rows * hw;
    if (!have_cols) be_.im2col(x.f32() + i * in_sz, g_, c);
    const float* dy_i = dy.f32() + i * out_sz;
    // dW[K, rows] (+)= dy_i[K, HW] * cols_i[rows, HW]^T; the first sample overwrites.
    be_.gemm(GemmOp::kNoTrans, GemmOp::kTrans, out_, rows, hw, 1.0f, dy_i, c, i == 0 ? 0.0f : 1.0f,
             grads_[0].f32());
    if (dx) {
      // dcols[rows, HW] = W[K, rows]^T * dy_i[K, HW], scattered back by col2im.
      be_.gemm(GemmOp::kTrans, GemmOp::kNoTrans, rows, hw, out_, 1.0f, params_[0].f32(), dy_i, 0.0f, dcols);
      be_.col2im(dcols, g_, dx->f32() + i * in_sz);
    }
  }
  if (n == 0) be_.fill(grads_[0], 0.0f);
  cols_for_ = x.f32();
  cols_batch_ = n;
}

}  // namespace shardtrain

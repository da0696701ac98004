#include "layers/conv2d.h"

#include <algorithm>

namespace shardtrain {

StatusOr<Shape> Conv2dLayer::configure_one(const Shape& in) {
  if (in.size() != 3)
    return error("conv2d expects a [C, H, W] input, got " + shape_str(in));
  const int64_t ph = in[1] + 2 * padding_, pw = in[2] + 2 * padding_;
  if (kernel_ > ph || kernel_ > pw)
    return error("kernel " + std::to_string(kernel_) + " larger than padded input " +
                                  std::to_string(ph) + "x" + std::to_string(pw));
  g_ = ConvGeometry{in[0], in[1], in[2], kernel_, stride_, padding_, (ph - kernel_) / stride_ + 1,
                    (pw - kernel_) / stride_ + 1};
  const int64_t fan_in = g_.col_rows();
  RETURN_IF_ERROR(declare("weight", {out_, g_.channels, kernel_, kernel_}, ParamInit::UniformFanIn(fan_in)));
  if (bias_) RETURN_IF_ERROR(declare("bias", {out_}, ParamInit::UniformFanIn(fan_in)));
  return Shape{out_, g_.out_height, g_.out_width};
}

namespace {
// Columns per GEMM: samples are processed in chunks of about this many output pixels, so
// a chunk's dy / output and dcols stay in L2 while each GEMM is still wide (measured on
// fashion_cnn: 2048 beat both 1024 and the whole batch at once).
constexpr int64_t kChunkCols = 2048;
}  // namespace

int64_t Conv2dLayer::chunk_samples() const { return std::max<int64_t>(1, kChunkCols / g_.col_cols()); }

void Conv2dLayer::forward_one(const ForwardContext&, const Tensor& x, Tensor& y) {
  const int64_t n = x.dim(0), rows = g_.col_rows(), hw = g_.col_cols(), chunk = chunk_samples();
  const int64_t in_sz = g_.channels * g_.height * g_.width, out_sz = out_ * hw;
  float* cols = cols_.get(be_, rows * n * hw).f32();
  float* yt = yt_.get(be_, out_ * std::min(n, chunk) * hw).f32();
  for (int64_t n0 = 0; n0 < n; n0 += chunk) {
    const int64_t nb = std::min(chunk, n - n0);
    float* c = cols + n0 * rows * hw;  // this chunk's [rows, nb*HW] block
    be_.im2col(x.f32() + n0 * in_sz, g_, nb, c);
    // yt[K, nb*HW] = W[K, rows] * c[rows, nb*HW], then y[nb, K, HW] = yt[K, nb, HW] swapped.
    be_.gemm(GemmOp::kNoTrans, GemmOp::kNoTrans, out_, nb * hw, rows, 1.0f, param(0).f32(), c, 0.0f, yt);
    if (bias_) be_.bias_add(yt, param(1).f32(), 1, out_, nb * hw);  // while yt is in cache
    be_.swap_outer_axes(yt, y.f32() + n0 * out_sz, out_, nb, hw);
  }
  cols_for_ = x.f32();
  cols_batch_ = n;
}

void Conv2dLayer::backward_one(const ForwardContext&, const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) {
  const int64_t n = x.dim(0), rows = g_.col_rows(), hw = g_.col_cols(), chunk = chunk_samples();
  const int64_t in_sz = g_.channels * g_.height * g_.width, out_sz = out_ * hw;
  const bool have_cols = cols_for_ == x.f32() && cols_batch_ == n;
  float* cols = cols_.get(be_, rows * n * hw).f32();
  float* dyt = yt_.get(be_, out_ * std::min(n, chunk) * hw).f32();
  float* dcols = dx ? dcols_.get(be_, rows * std::min(n, chunk) * hw).f32() : nullptr;
  const float* ones = nullptr;
  if (bias_) {
    Tensor& t = ones_.get(be_, std::min(n, chunk) * hw);
    be_.fill(t, 1.0f);
    ones = t.f32();
  }
  for (int64_t n0 = 0; n0 < n; n0 += chunk) {
    const int64_t nb = std::min(chunk, n - n0);
    float* c = cols + n0 * rows * hw;
    if (!have_cols) be_.im2col(x.f32() + n0 * in_sz, g_, nb, c);
    be_.swap_outer_axes(dy.f32() + n0 * out_sz, dyt, nb, out_, hw);  // dyt[K, nb*HW]
    // dW[K, rows] += dyt[K, nb*HW] * c[rows, nb*HW]^T; chunks always add in the same order.
    be_.gemm(GemmOp::kNoTrans, GemmOp::kTrans, out_, rows, nb * hw, 1.0f, dyt, c, 1.0f, grad(0).f32());
    // db[K] += dyt[K, nb*HW] * ones[nb*HW], from the chunk while it is in cache.
    if (bias_) be_.gemm(GemmOp::kNoTrans, GemmOp::kNoTrans, out_, 1, nb * hw, 1.0f, dyt, ones, 1.0f, grad(1).f32());
    if (dx) {
      // dcols[rows, nb*HW] = W[K, rows]^T * dyt[K, nb*HW], scattered back by col2im.
      be_.gemm(GemmOp::kTrans, GemmOp::kNoTrans, rows, nb * hw, out_, 1.0f, param(0).f32(), dyt, 0.0f, dcols);
      be_.col2im(dcols, g_, nb, dx->f32() + n0 * in_sz);
    }
  }
  cols_for_ = x.f32();
  cols_batch_ = n;
}

}  // namespace shardtrain

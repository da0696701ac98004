// Conv2d: [C, H, W] -> [K, Ho, Wo] with a square kernel, as torch.nn.Conv2d
// (weight [K, C, k, k], bias [K]).
//
// Forward lowers each sample with im2col into a per-batch column buffer and runs one GEMM
// per sample straight into that sample's output slice. The columns are kept for backward
// (dW = sum_n dy_n cols_n^T) so im2col runs once per step; backward recomputes them only
// if it is handed a different input than the last forward saw.
#pragma once

#include "layers/layer.h"
#include "layers/layer_util.h"

namespace shardtrain {

class Conv2dLayer final : public Layer {
 public:
  Conv2dLayer(std::string name, Backend& backend, int64_t out_channels, int64_t kernel, int64_t stride,
              int64_t padding, bool bias)
      : Layer(std::move(name), backend), out_(out_channels), kernel_(kernel), stride_(stride), padding_(padding),
        bias_(bias) {}
  const char* type() const override { return "conv2d"; }

  // REQUIRES in_shape == [C, H, W] with the kernel fitting the padded input.
  StatusOr<Shape> configure(const Shape& in_shape) override;
  std::vector<ParamSpec> param_specs() const override;
  void forward(const ForwardContext& ctx, const Tensor& x, Tensor& y) override;
  void backward(const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;

 private:
  int64_t out_, kernel_, stride_, padding_;
  bool bias_;
  ConvGeometry g_{};
  ScratchBuffer cols_;   // [N, col_rows, col_cols] from the last forward
  ScratchBuffer dcols_;  // [col_rows, col_cols], one sample at a time in backward
  const float* cols_for_ = nullptr;  // input the columns were built from
  int64_t cols_batch_ = 0;
};

}  // namespace shardtrain

// Conv2d: [C, H, W] -> [K, Ho, Wo] with a square kernel, as torch.nn.Conv2d
// (weight [K, C, k, k], bias [K]).
//
// Forward lowers the batch with im2col in chunks of samples (about kChunkCols output
// pixels each): one [C*k*k, nb*Ho*Wo] column block and one GEMM into [K, nb*Ho*Wo] per
// chunk, swapped into the [N, K, Ho*Wo] output. A wide GEMM runs much faster than N thin
// per-sample ones, and chunking keeps its operands in cache. Backward swaps each chunk of
// dy the other way and runs one GEMM for dW, one (against a ones vector) for db and one
// for the input columns (then col2im); dW and db accumulate over chunks in a fixed order.
// The columns are kept for backward so im2col runs once per step; backward recomputes
// them only if it is handed a different input than the last forward saw.
#pragma once

#include "layers/layer.h"
#include "layers/layer_util.h"

namespace shardtrain {

class Conv2dLayer final : public UnaryLayer {
 public:
  Conv2dLayer(std::string name, Backend& backend, int64_t out_channels, int64_t kernel, int64_t stride,
              int64_t padding, bool bias)
      : UnaryLayer(std::move(name), backend), out_(out_channels), kernel_(kernel), stride_(stride), padding_(padding),
        bias_(bias) {}
  const char* type() const override { return "conv2d"; }


 protected:
  // REQUIRES in_shape == [C, H, W] with the kernel fitting the padded input.
  StatusOr<Shape> configure_one(const Shape& in_shape) override;
  bool supports_bf16() const override { return false; }
  void forward_one(const ForwardContext& ctx, const Tensor& x, Tensor& y) override;
  void backward_one(const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy,
                    Tensor* dx) override;

 private:
  int64_t chunk_samples() const;  // samples per im2col + GEMM chunk

  int64_t out_, kernel_, stride_, padding_;
  bool bias_;
  ConvGeometry g_{};
  ScratchBuffer cols_;   // the whole batch's columns from the last forward, chunk after chunk
                         // (so it grows with the batch, eval_batch included)
  ScratchBuffer yt_;     // [K, nb * col_cols]: one chunk's output / dy, channel-major
  ScratchBuffer dcols_;  // [col_rows, nb * col_cols]: one chunk's input-column gradients
  ScratchBuffer ones_;   // [nb * col_cols] of 1.0f: the bias gradient is dyt * ones
  const float* cols_for_ = nullptr;  // input the columns were built from
  int64_t cols_batch_ = 0;
};

}  // namespace shardtrain

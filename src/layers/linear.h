// Linear: y = x W^T + b over the last dimension, as torch.nn.Linear (weight [out, in]).
// A sample is a feature vector [D] or a sequence of them [T, D] (transformers).
// Tied (`tied_to` names another parameter of shape [out, in]): the weight is that
// parameter, e.g. GPT-2's LM head is the token embedding table; its gradient receives
// both uses. With an activation (GPT-2's MLP: GELU, tanh form) the layer is
// y = act(x W^T + b) through Backend::linear_act_forward, which a GPU fuses into the GEMM;
// it keeps the pre-activation for backward.
#pragma once

#include "layers/layer.h"
#include "layers/layer_util.h"

namespace shardtrain {

class LinearLayer final : public UnaryLayer {
 public:
  // init_std > 0: weight ~ N(0, init_std^2) and bias zeros (GPT-2); else PyTorch's default
  // U(+-1/sqrt(in)) for both.
  LinearLayer(std::string name, Backend& backend, int64_t out_features, bool bias, float init_std = 0.0f,
              bool gelu_tanh = false)
      : UnaryLayer(std::move(name), backend), out_(out_features), bias_(bias), init_std_(init_std),
        gelu_tanh_(gelu_tanh) {}
  // A bias-free head whose weight is the parameter `tied_to` (its rows are the outputs).
  LinearLayer(std::string name, Backend& backend, std::string tied_to)
      : UnaryLayer(std::move(name), backend), out_(0), bias_(false), init_std_(0), tied_to_(std::move(tied_to)) {}
  const char* type() const override { return !tied_to_.empty() ? "lm_head" : gelu_tanh_ ? "linear_gelu" : "linear"; }

 protected:
  // REQUIRES in_shape == [D] or [T, D]: an image needs a flatten first.
  StatusOr<Shape> configure_one(const Shape& in_shape) override;
  void forward_one(const ForwardContext& ctx, const Tensor& x, Tensor& y) override;
  void backward_one(const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy,
                    Tensor* dx) override;

 private:
  int64_t in_ = 0, out_;
  bool bias_;
  float init_std_;
  bool gelu_tanh_ = false;
  std::string tied_to_;
  ScratchBuffer pre_, dpre_;  // with an activation: x W^T + b [n, out], and its gradient
};

}  // namespace shardtrain

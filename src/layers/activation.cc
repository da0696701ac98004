#include "layers/activation.h"

namespace shardtrain {

const char* ActivationLayer::type() const {
  switch (act_) {
    case Activation::kRelu: return "relu";
    case Activation::kGelu: return "gelu";
    case Activation::kGeluTanh: return "gelu_tanh";
  }
  return "activation";
}

void ActivationLayer::forward_one(const ForwardContext&, const Tensor& x, Tensor& y) {
  be_.activation_forward(act_, x, y);
}

// No parameters: only dx, and only when asked for.
void ActivationLayer::backward_one(const ForwardContext&, const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) {
  if (dx) be_.activation_backward(act_, x, dy, *dx);
}

}  // namespace shardtrain

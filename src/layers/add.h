// Residual add: y = a + b for two values of the same spec. Both inputs receive dy.
#pragma once

#include "layers/layer.h"

namespace shardtrain {

// The spec two residual inputs share (one shape, one floating-point dtype), or an
// InvalidArgument saying what differs, for `type` ("add", "residual_layer_norm").
StatusOr<ValueSpec> residual_input_spec(const char* type, const std::vector<ValueSpec>& in);

class AddLayer final : public Layer {
 public:
  AddLayer(std::string name, Backend& backend) : Layer(std::move(name), backend) {}
  const char* type() const override { return "add"; }
  int num_inputs() const override { return 2; }

  StatusOr<std::vector<ValueSpec>> configure(const std::vector<ValueSpec>& in, ParamStore& store) override;
  void forward(const ForwardContext& ctx, const ConstTensors& in, const MutTensors& out) override;
  void backward(const ForwardContext& ctx, const ConstTensors& in, const ConstTensors& out, const ConstTensors& dout,
                const MutTensors& din) override;
};

}  // namespace shardtrain

// A residual add and the LayerNorm that reads it, as one node (llm.c's fused residual
// forward): (a, b) -> (sum = a + b, y = LayerNorm(sum)), with weight (ones) and bias
// (zeros) [C] named "<name>.weight" / "<name>.bias" as layer_norm's. The same numbers as
// add then layer_norm (bit for bit on the CPU); on a GPU one kernel reads a and b once and
// writes both outputs, instead of add writing sum and LayerNorm reading it back.
//
// Backward: both inputs get dsum = dout[0] + LayerNorm_backward(dout[1]) (a null dout is
// zero), added in the order the graph adds a value's gradients, so the gradients are those
// of the two unfused nodes too.
#pragma once

#include "layers/layer.h"
#include "layers/layer_util.h"

namespace shardtrain {

class ResidualLayerNormLayer final : public Layer {
 public:
  ResidualLayerNormLayer(std::string name, Backend& backend, float eps) : Layer(std::move(name), backend), eps_(eps) {}
  const char* type() const override { return "residual_layer_norm"; }
  int num_inputs() const override { return 2; }

  StatusOr<std::vector<ValueSpec>> configure(const std::vector<ValueSpec>& in, ParamStore& store) override;
  void forward(const ForwardContext& ctx, const ConstTensors& in, const MutTensors& out) override;
  void backward(const ForwardContext& ctx, const ConstTensors& in, const ConstTensors& out, const ConstTensors& dout,
                const MutTensors& din) override;

 private:
  float eps_;
  int64_t dim_ = 0;
  ScratchBuffer mean_, rstd_, dsum_;  // [rows] each; dsum_ only when no input gradient is wanted
};

}  // namespace shardtrain

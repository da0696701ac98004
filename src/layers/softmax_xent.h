// The loss head: softmax cross-entropy of logits [..., L] against int32 labels [...], one
// loss per position (one per image, or one per token of a sequence). The first
// `num_classes` of the L logit columns are the classes; with `padded`, the rest is
// vocabulary padding (a tied LM head over a padded embedding table) and is ignored.
//
// Its backward seeds the whole backward pass: dlogits = (softmax - onehot) * grad_scale /
// positions, so the summed gradient over ranks is that of the mean loss over every
// position of the global batch.
#pragma once

#include "layers/layer.h"
#include "layers/layer_util.h"

namespace shardtrain {

class SoftmaxCrossEntropyLayer final : public Layer {
 public:
  SoftmaxCrossEntropyLayer(std::string name, Backend& backend, int64_t num_classes, bool padded)
      : Layer(std::move(name), backend), classes_(num_classes), padded_(padded) {}
  const char* type() const override { return "softmax_cross_entropy"; }
  int num_inputs() const override { return 2; }
  int64_t positions_per_sample() const { return positions_; }

  // in: logits [..., L] float32, labels [...] int32; out: losses [...] float32.
  StatusOr<std::vector<ValueSpec>> configure(const std::vector<ValueSpec>& in, ParamStore& store) override;
  void forward(const ForwardContext& ctx, const ConstTensors& in, const MutTensors& out) override;
  void backward(const ForwardContext& ctx, const ConstTensors& in, const ConstTensors& out, const ConstTensors& dout,
                const MutTensors& din) override;
  // Positions of the last forward whose first argmax is the label. Synchronizes.
  int64_t count_correct(const Tensor& logits, const Tensor& labels);

 private:
  int64_t classes_, ld_ = 0, positions_ = 0;
  bool padded_;
  ScratchBuffer stats_;  // [positions, 2] of the last forward
};

}  // namespace shardtrain

#include "layers/softmax_xent.h"

namespace shardtrain {

StatusOr<std::vector<ValueSpec>> SoftmaxCrossEntropyLayer::configure(const std::vector<ValueSpec>& in, ParamStore&) {
  if (in.size() != 2) return error("softmax_cross_entropy takes logits and labels, got " + std::to_string(in.size()) + " inputs");
  const ValueSpec &logits = in[0], &labels = in[1];
  if (logits.dtype == DType::kInt32 || labels.dtype != DType::kInt32)
    return error("softmax_cross_entropy takes floating-point logits and int32 labels");
  Shape lead(logits.shape.begin(), logits.shape.end() - (logits.shape.empty() ? 0 : 1));
  if (logits.shape.empty() || lead != labels.shape)
    return error("logits " + shape_str(logits.shape) + " do not fit labels " + shape_str(labels.shape));
  ld_ = logits.shape.back();
  if (padded_ ? ld_ < classes_ : ld_ != classes_)
    return error("outputs " + shape_str(logits.shape) + " per sample but the loss needs " +
                 (padded_ ? "at least " : "") + std::to_string(classes_) + " classes in the last dimension (data.num_classes)");
  positions_ = shape_numel(labels.shape);
  return std::vector<ValueSpec>{{labels.shape, DType::kFloat32}};
}

void SoftmaxCrossEntropyLayer::forward(const ForwardContext&, const ConstTensors& in, const MutTensors& out) {
  const int64_t rows = in[1]->numel();
  be_.softmax_xent_forward(*in[0], ld_, *in[1], rows, classes_, stats_.get(be_, 2 * rows), *out[0]);
}

void SoftmaxCrossEntropyLayer::backward(const ForwardContext& ctx, const ConstTensors& in, const ConstTensors&,
                                        const ConstTensors&, const MutTensors& din) {
  if (!din[0]) return;
  const int64_t rows = in[1]->numel();
  const float scale = positions_ == 1 ? ctx.grad_scale : ctx.grad_scale / static_cast<float>(positions_);
  be_.softmax_xent_backward(*in[0], ld_, stats_.get(be_, 2 * rows), *in[1], rows, classes_, scale, *din[0]);
}

int64_t SoftmaxCrossEntropyLayer::count_correct(const Tensor& logits, const Tensor& labels) {
  return be_.count_correct(logits, ld_, labels, labels.numel(), classes_);
}

}  // namespace shardtrain

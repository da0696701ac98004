#include "layers/embedding.h"

namespace shardtrain {

StatusOr<std::vector<ValueSpec>> EmbeddingLayer::configure(const std::vector<ValueSpec>& in, ParamStore& store) {
  if (in.size() != 1 || in[0].dtype != DType::kInt32)
    return error("embedding reads one int32 value of token ids (data.kind: KIND_TOKENS)");
  RETURN_IF_ERROR(declare_param(store, "weight", {padded_rows(), dim_}, ParamInit::Normal(init_std_)));
  Shape out = in[0].shape;
  out.push_back(dim_);
  return std::vector<ValueSpec>{{out, store.compute_dtype()}};
}

void EmbeddingLayer::forward(const ForwardContext&, const ConstTensors& in, const MutTensors& out) {
  be_.embedding_forward(*in[0], param(0), *out[0]);
}

void EmbeddingLayer::backward(const ForwardContext&, const ConstTensors& in, const ConstTensors&,
                              const ConstTensors& dout, const MutTensors&) {
  be_.embedding_backward(*in[0], *dout[0], grad(0));  // token ids have no gradient
}

StatusOr<Shape> PositionEmbeddingLayer::configure_one(const Shape& in) {
  if (in.size() != 2) return error("position_embedding expects a [T, D] input, got " + shape_str(in));
  seq_ = in[0];
  dim_ = in[1];
  if (seq_ > max_seq_)
    return error("sequences of " + std::to_string(seq_) + " positions (data.seq_len) do not fit max_seq " +
                 std::to_string(max_seq_) + " of the position embedding");
  RETURN_IF_ERROR(declare("weight", {max_seq_, dim_}, ParamInit::Normal(init_std_)));
  return in;
}

// Rows [p, p + T) of the table are one [T * D] "bias" over the batch (p = 0 except when
// decoding incrementally).
void PositionEmbeddingLayer::forward_one(const ForwardContext& ctx, const Tensor& x, Tensor& y) {
  const int64_t first = ctx.incremental ? ctx.position : 0, n = x.numel() / (x.dim(0) * dim_);
  be_.copy(x, y);
  be_.bias_add(y, param(0).slice(first * dim_, {n * dim_}), x.dim(0), n * dim_, 1);
}

void PositionEmbeddingLayer::backward_one(const ForwardContext&, const Tensor&, const Tensor&, const Tensor& dy,
                                          Tensor* dx) {
  be_.bias_grad(dy, grad(0), dy.dim(0), seq_ * dim_, 1);
  if (dx) be_.copy(dy, *dx);
}

}  // namespace shardtrain

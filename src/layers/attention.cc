#include "layers/attention.h"

namespace shardtrain {

StatusOr<Shape> CausalSelfAttentionLayer::configure_one(const Shape& in) {
  if (in.size() != 2 || in[1] % 3 != 0)
    return error("causal_self_attention expects a [T, 3C] input (the fused q, k, v projection), got " +
                 shape_str(in));
  const int64_t c = in[1] / 3;
  if (c % heads_ != 0)
    return error("d_model " + std::to_string(c) + " does not divide into " + std::to_string(heads_) + " heads");
  seq_ = in[0];
  head_dim_ = c / heads_;
  return Shape{seq_, c};
}

void CausalSelfAttentionLayer::forward_one(const ForwardContext& ctx, const Tensor& x, Tensor& y) {
  if (ctx.incremental) {
    const int64_t batch = x.dim(0), n = x.numel() / (batch * 3 * heads_ * head_dim_);
    if (ctx.position == 0 || !cache_.defined() || cache_.dim(0) != batch)
      cache_ = be_.alloc({batch, seq_, 2 * heads_ * head_dim_}, x.dtype());
    be_.attention_decode(x, ctx.position, AttentionGeometry{batch, n, heads_, head_dim_}, cache_, y);
    return;
  }
  const AttentionGeometry g = geometry(x.dim(0));
  const int64_t n = g.batch * g.heads * g.seq;
  Tensor lse = lse_.get(be_, n).slice(0, {g.batch, g.heads, g.seq});
  be_.attention_forward(x, g, y, lse);
}

void CausalSelfAttentionLayer::backward_one(const ForwardContext&, const Tensor& x, const Tensor& y, const Tensor& dy,
                                            Tensor* dx) {
  if (!dx) return;  // no parameters: nothing to do without an input gradient
  const AttentionGeometry g = geometry(x.dim(0));
  Tensor lse = lse_.get(be_, g.batch * g.heads * g.seq).slice(0, {g.batch, g.heads, g.seq});
  be_.attention_backward(dy, x, y, lse, g, *dx);
}

}  // namespace shardtrain

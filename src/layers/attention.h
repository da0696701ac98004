// Causal multi-head self-attention over the fused QKV projection's output: a sample
// [T, 3C] (q, k, v side by side, as nanoGPT's c_attn) becomes [T, C]. The projections
// themselves are ordinary linear nodes around this one (transformer_block wires them).
// Forward keeps each query's log-sum-exp for backward; no [T, T] matrix is kept.
#pragma once

#include "layers/layer.h"
#include "layers/layer_util.h"

namespace shardtrain {

class CausalSelfAttentionLayer final : public UnaryLayer {
 public:
  CausalSelfAttentionLayer(std::string name, Backend& backend, int64_t heads)
      : UnaryLayer(std::move(name), backend), heads_(heads) {}
  const char* type() const override { return "causal_self_attention"; }
  int64_t heads() const { return heads_; }

 protected:
  StatusOr<Shape> configure_one(const Shape& in_shape) override;
  void forward_one(const ForwardContext& ctx, const Tensor& x, Tensor& y) override;
  void backward_one(const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy,
                    Tensor* dx) override;

 private:
  AttentionGeometry geometry(int64_t batch) const { return {batch, seq_, heads_, head_dim_}; }
  int64_t heads_, seq_ = 0, head_dim_ = 0;
  ScratchBuffer lse_;  // [N, H, T]
  Tensor cache_;       // incremental decoding: keys and values [N, T, 2C] of earlier positions
};

}  // namespace shardtrain

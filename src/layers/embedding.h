// Token embedding: int32 token ids [T] -> rows of a learned table [T, D], as
// torch.nn.Embedding. The table has num_embeddings rounded up to a multiple of
// `pad_to` rows (llm.c pads GPT-2's 50257 to 50304 so the tied LM head's GEMM and the
// logits rows are aligned); padded rows are never looked up and, through a tied head, only
// ever produce padded logits that the loss ignores.
#pragma once

#include "layers/layer.h"
#include "layers/layer_util.h"

namespace shardtrain {

class EmbeddingLayer final : public Layer {
 public:
  EmbeddingLayer(std::string name, Backend& backend, int64_t num_embeddings, int64_t dim, int64_t pad_to,
                 float init_std)
      : Layer(std::move(name), backend), vocab_(num_embeddings), dim_(dim), pad_to_(pad_to), init_std_(init_std) {}
  const char* type() const override { return "embedding"; }
  int64_t num_embeddings() const { return vocab_; }
  int64_t padded_rows() const { return (vocab_ + pad_to_ - 1) / pad_to_ * pad_to_; }

  StatusOr<std::vector<ValueSpec>> configure(const std::vector<ValueSpec>& in, ParamStore& store) override;
  void forward(const ForwardContext& ctx, const ConstTensors& in, const MutTensors& out) override;
  void backward(const ForwardContext& ctx, const ConstTensors& in, const ConstTensors& out, const ConstTensors& dout,
                const MutTensors& din) override;

 private:
  int64_t vocab_, dim_, pad_to_;
  float init_std_;
};

// Learned absolute positions (GPT-2's wpe): y[t] = x[t] + weight[t] for a [T, D] sample,
// T <= max_seq.
class PositionEmbeddingLayer final : public UnaryLayer {
 public:
  PositionEmbeddingLayer(std::string name, Backend& backend, int64_t max_seq, float init_std)
      : UnaryLayer(std::move(name), backend), max_seq_(max_seq), init_std_(init_std) {}
  const char* type() const override { return "position_embedding"; }

 protected:
  StatusOr<Shape> configure_one(const Shape& in_shape) override;
  void forward_one(const ForwardContext& ctx, const Tensor& x, Tensor& y) override;
  void backward_one(const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy,
                    Tensor* dx) override;

 private:
  int64_t max_seq_;
  float init_std_;
  int64_t seq_ = 0, dim_ = 0;
};

}  // namespace shardtrain

// The one table from LayerConfig's oneof `type` to a constructor. The switch has no
// default, so -Wswitch flags a new oneof case here, and tests/unit/layers/registry_test.cc
// builds every case the proto descriptor lists, so a missing entry also fails a test.
#include "layers/registry.h"

#include "layers/activation.h"
#include "layers/add.h"
#include "layers/attention.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/embedding.h"
#include "layers/flatten.h"
#include "layers/layer_norm.h"
#include "layers/layer_util.h"
#include "layers/linear.h"
#include "layers/max_pool2d.h"
#include "layers/residual_layer_norm.h"
#include "layers/softmax_xent.h"

namespace shardtrain {

namespace {

using config::LayerConfig;

template <typename L, typename... Args>
StatusOr<std::unique_ptr<Layer>> make(Args&&... args) {
  return std::unique_ptr<Layer>(new L(std::forward<Args>(args)...));
}

StatusOr<std::unique_ptr<Layer>> build(const LayerConfig& cfg, const std::string& name, const LayerBuildContext& lc,
                                       Backend& be) {
  // `bad("linear.out_features must be > 0")` -> "model.layer[3] (fc1): linear.out_features ..."
  auto bad = [](const std::string& msg) { return Status::InvalidArgument(msg); };
  switch (cfg.type_case()) {
    case LayerConfig::kLinear: {
      const auto& c = cfg.linear();
      if (c.out_features() <= 0) return bad("linear.out_features must be > 0");
      if (c.init_std() < 0) return bad("linear.init_std must be >= 0");
      return make<LinearLayer>(name, be, c.out_features(), c.bias(), c.init_std(),
                               c.activation() == config::LinearConfig::ACTIVATION_GELU_TANH);
    }
    case LayerConfig::kConv2D: {
      const auto& c = cfg.conv2d();
      if (c.out_channels() <= 0) return bad("conv2d.out_channels must be > 0");
      if (c.kernel_size() <= 0) return bad("conv2d.kernel_size must be > 0");
      if (c.stride() <= 0) return bad("conv2d.stride must be > 0");
      if (c.padding() < 0) return bad("conv2d.padding must be >= 0");
      return make<Conv2dLayer>(name, be, c.out_channels(), c.kernel_size(), c.stride(), c.padding(), c.bias());
    }
    case LayerConfig::kMaxPool2D: {
      const auto& c = cfg.max_pool2d();
      if (c.kernel_size() <= 0) return bad("max_pool2d.kernel_size must be > 0");
      if (c.has_stride() && c.stride() <= 0) return bad("max_pool2d.stride must be > 0");
      const int64_t stride = c.has_stride() ? c.stride() : c.kernel_size();
      return make<MaxPool2dLayer>(name, be, c.kernel_size(), stride);
    }
    case LayerConfig::kFlatten:
      return make<FlattenLayer>(name, be);
    case LayerConfig::kRelu:
      return make<ActivationLayer>(name, be, Activation::kRelu);
    case LayerConfig::kGelu:
      return make<ActivationLayer>(name, be, cfg.gelu().tanh() ? Activation::kGeluTanh : Activation::kGelu);
    case LayerConfig::kDropout: {
      const float p = cfg.dropout().p();
      if (!(p >= 0.0f && p < 1.0f)) return bad("dropout.p must be in [0, 1), got " + std::to_string(p));
      return make<DropoutLayer>(name, be, p);
    }
    case LayerConfig::kEmbedding: {
      const auto& c = cfg.embedding();
      if (c.num_embeddings() <= 0) return bad("embedding.num_embeddings must be > 0");
      if (c.dim() <= 0) return bad("embedding.dim must be > 0");
      if (c.pad_to() <= 0) return bad("embedding.pad_to must be > 0");
      if (!(c.init_std() > 0)) return bad("embedding.init_std must be > 0");
      return make<EmbeddingLayer>(name, be, c.num_embeddings(), c.dim(), c.pad_to(), c.init_std());
    }
    case LayerConfig::kPositionEmbedding: {
      const auto& c = cfg.position_embedding();
      if (c.max_seq() <= 0) return bad("position_embedding.max_seq must be > 0");
      if (!(c.init_std() > 0)) return bad("position_embedding.init_std must be > 0");
      return make<PositionEmbeddingLayer>(name, be, c.max_seq(), c.init_std());
    }
    case LayerConfig::kLayerNorm:
      if (!(cfg.layer_norm().eps() > 0)) return bad("layer_norm.eps must be > 0");
      return make<LayerNormLayer>(name, be, cfg.layer_norm().eps());
    case LayerConfig::kResidualLayerNorm:
      if (!(cfg.residual_layer_norm().eps() > 0)) return bad("residual_layer_norm.eps must be > 0");
      return make<ResidualLayerNormLayer>(name, be, cfg.residual_layer_norm().eps());
    case LayerConfig::kCausalSelfAttention:
      if (cfg.causal_self_attention().n_head() <= 0) return bad("causal_self_attention.n_head must be > 0");
      return make<CausalSelfAttentionLayer>(name, be, cfg.causal_self_attention().n_head());
    case LayerConfig::kAdd:
      return make<AddLayer>(name, be);
    case LayerConfig::kLmHead:
      if (cfg.lm_head().tied_to().empty()) return bad("lm_head.tied_to must name the embedding layer (e.g. \"wte\")");
      return make<LinearLayer>(name, be, cfg.lm_head().tied_to() + ".weight");
    case LayerConfig::kSoftmaxCrossEntropy:
      if (lc.num_classes <= 0) return bad("the loss needs data.num_classes > 0");
      return make<SoftmaxCrossEntropyLayer>(name, be, lc.num_classes, lc.logits_padded);
    case LayerConfig::kTransformerBlock:
      return bad("transformer_block is expanded by the model, not built as one layer");
    case LayerConfig::TYPE_NOT_SET:
      return bad("no layer type set");
  }
  return Status::Internal("layer type '" + layer_type_name(cfg) + "' has no entry in layers/registry.cc");
}

}  // namespace

std::string layer_type_name(const LayerConfig& cfg) {
  const auto* field = LayerConfig::descriptor()->FindFieldByNumber(static_cast<int>(cfg.type_case()));
  return field ? field->name() : "unknown";
}

StatusOr<std::unique_ptr<Layer>> make_layer(const LayerConfig& cfg, const std::string& name, const std::string& where,
                                            const LayerBuildContext& ctx, Backend& backend) {
  auto layer = build(cfg, name, ctx, backend);
  if (!layer.ok()) return layer.status().WithContext(where);
  (*layer)->set_where(where);
  return std::move(layer).value();
}

StatusOr<std::unique_ptr<Layer>> make_layer(const LayerConfig& cfg, int index, Backend& backend,
                                            const LayerBuildContext& ctx) {
  const std::string where = "model.layer[" + std::to_string(index) + "]";
  if (cfg.type_case() == LayerConfig::TYPE_NOT_SET) return Status::InvalidArgument(where + ": no layer type set");
  const std::string name = cfg.name().empty() ? layer_type_name(cfg) + std::to_string(index) : cfg.name();
  ASSIGN_OR_RETURN(auto layer, make_layer(cfg, name, layer_where(index, name), ctx, backend));
  layer->set_index(index);
  return layer;
}

}  // namespace shardtrain

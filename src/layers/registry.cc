// The one table from LayerConfig's oneof `type` to a constructor. The switch has no
// default, so -Wswitch flags a new oneof case here, and tests/unit/layers/registry_test.cc
// builds every case the proto descriptor lists, so a missing entry also fails a test.
#include "layers/registry.h"

#include "layers/activation.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/layer_util.h"
#include "layers/linear.h"
#include "layers/max_pool2d.h"

namespace shardtrain {

namespace {

using config::LayerConfig;

// The oneof field's name ("linear", "max_pool2d"): the layer's type and default name.
std::string type_name(const LayerConfig& cfg) {
  const auto* field = LayerConfig::descriptor()->FindFieldByNumber(static_cast<int>(cfg.type_case()));
  return field ? field->name() : "unknown";
}

StatusOr<std::unique_ptr<Layer>> build(const LayerConfig& cfg, const std::string& name, Backend& be) {
  // `bad("linear.out_features must be > 0")` -> "model.layer[3] (fc1): linear.out_features ..."
  auto bad = [](const std::string& msg) { return Status::InvalidArgument(msg); };
  switch (cfg.type_case()) {
    case LayerConfig::kLinear: {
      const auto& c = cfg.linear();
      if (c.out_features() <= 0) return bad("linear.out_features must be > 0");
      return std::unique_ptr<Layer>(new LinearLayer(name, be, c.out_features(), c.bias()));
    }
    case LayerConfig::kConv2D: {
      const auto& c = cfg.conv2d();
      if (c.out_channels() <= 0) return bad("conv2d.out_channels must be > 0");
      if (c.kernel_size() <= 0) return bad("conv2d.kernel_size must be > 0");
      if (c.stride() <= 0) return bad("conv2d.stride must be > 0");
      if (c.padding() < 0) return bad("conv2d.padding must be >= 0");
      return std::unique_ptr<Layer>(
          new Conv2dLayer(name, be, c.out_channels(), c.kernel_size(), c.stride(), c.padding(), c.bias()));
    }
    case LayerConfig::kMaxPool2D: {
      const auto& c = cfg.max_pool2d();
      if (c.kernel_size() <= 0) return bad("max_pool2d.kernel_size must be > 0");
      if (c.has_stride() && c.stride() <= 0) return bad("max_pool2d.stride must be > 0");
      const int64_t stride = c.has_stride() ? c.stride() : c.kernel_size();
      return std::unique_ptr<Layer>(new MaxPool2dLayer(name, be, c.kernel_size(), stride));
    }
    case LayerConfig::kFlatten:
      return std::unique_ptr<Layer>(new FlattenLayer(name, be));
    case LayerConfig::kRelu:
      return std::unique_ptr<Layer>(new ActivationLayer(name, be, Activation::kRelu));
    case LayerConfig::kGelu:
      return std::unique_ptr<Layer>(new ActivationLayer(name, be, Activation::kGelu));
    case LayerConfig::kDropout: {
      const float p = cfg.dropout().p();
      if (!(p >= 0.0f && p < 1.0f)) return bad("dropout.p must be in [0, 1), got " + std::to_string(p));
      return std::unique_ptr<Layer>(new DropoutLayer(name, be, p));
    }
    case LayerConfig::TYPE_NOT_SET:
      return bad("no layer type set");
  }
  return Status::Internal("layer type '" + type_name(cfg) + "' has no entry in layers/registry.cc");
}

}  // namespace

StatusOr<std::unique_ptr<Layer>> make_layer(const LayerConfig& cfg, int index, Backend& backend) {
  const std::string where = "model.layer[" + std::to_string(index) + "]";
  if (cfg.type_case() == LayerConfig::TYPE_NOT_SET) return Status::InvalidArgument(where + ": no layer type set");
  const std::string name = cfg.name().empty() ? type_name(cfg) + std::to_string(index) : cfg.name();
  auto layer = build(cfg, name, backend);
  if (!layer.ok()) return layer.status().WithContext(layer_where(index, name));
  (*layer)->set_index(index);
  return std::move(layer).value();
}

}  // namespace shardtrain

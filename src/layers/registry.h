// The one table from LayerConfig type to constructor (no self-registering statics).
#pragma once

#include <memory>
#include <string>

#include "config/shardtrain.pb.h"
#include "layers/layer.h"

namespace shardtrain {

// What some layers need from outside their own config.
struct LayerBuildContext {
  int64_t num_classes = 0;     // data.num_classes: the loss head's class count
  bool logits_padded = false;  // the loss head's logits come from a padded-vocabulary head
};

// The oneof field's name ("linear", "max_pool2d"): a layer's type in configs and its
// default name.
std::string layer_type_name(const config::LayerConfig& cfg);

// Builds the layer `name`; `where` is how its errors name it ("model.layer[3] (fc1)").
// transformer_block is not a layer (model/ expands it) and is InvalidArgument here.
StatusOr<std::unique_ptr<Layer>> make_layer(const config::LayerConfig& cfg, const std::string& name,
                                            const std::string& where, const LayerBuildContext& ctx,
                                            Backend& backend);

// For tests: model.layer[index] with its default name, as the model builds it.
StatusOr<std::unique_ptr<Layer>> make_layer(const config::LayerConfig& cfg, int index, Backend& backend,
                                            const LayerBuildContext& ctx = {});

}  // namespace shardtrain

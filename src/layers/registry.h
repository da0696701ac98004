// The one table from LayerConfig type to constructor (no self-registering statics).
#pragma once

#include <memory>

#include "config/shardtrain.pb.h"
#include "layers/layer.h"

namespace shardtrain {

// `index` is the layer's position in model.layer; it names unnamed layers ("conv2d0")
// and is used in error messages ("model.layer[3] (fc1): ...").
StatusOr<std::unique_ptr<Layer>> make_layer(const config::LayerConfig& cfg, int index, Backend& backend);

}  // namespace shardtrain

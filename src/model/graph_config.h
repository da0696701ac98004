// From model config to graph nodes: default names and wiring, transformer_block
// expansion. Pure functions of the config (and, for a block, its input width), so the
// graph a config means can be tested without building layers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/shardtrain.pb.h"
#include "core/status.h"

namespace shardtrain {

// One node of the graph: a layer config that is never a transformer_block, its name, the
// values it reads and writes, and how errors name it ("model.layer[2] (h.0.attn)").
struct NodeConfig {
  config::LayerConfig layer;
  std::string name;
  std::vector<std::string> inputs, outputs;
  std::string where;
};

// The nodes of model.layer[index] = a transformer_block named `name`, reading `input`
// whose last dimension is `d_model`. The last node's first output is the block's output.
// InvalidArgument (naming the layer) when n_head, count, mlp_ratio or d_model do not fit.
StatusOr<std::vector<NodeConfig>> expand_transformer_block(const config::LayerConfig& cfg, const std::string& name,
                                                           int index, const std::string& input, int64_t d_model);

}  // namespace shardtrain

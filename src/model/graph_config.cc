#include "model/graph_config.h"

#include <cmath>

#include "layers/layer_util.h"

namespace shardtrain {
namespace {

using config::LayerConfig;

// Appends node `local` (full name "<prefix>.<local>") reading `inputs`; returns its output.
class BlockBuilder {
 public:
  BlockBuilder(std::string prefix, int index, std::vector<NodeConfig>* nodes)
      : prefix_(std::move(prefix)), index_(index), nodes_(nodes) {}

  std::string add(const std::string& local, LayerConfig layer, std::vector<std::string> inputs) {
    NodeConfig n;
    n.name = prefix_ + "." + local;
    layer.set_name(n.name);
    n.layer = std::move(layer);
    n.inputs = std::move(inputs);
    n.outputs = {n.name};
    n.where = layer_where(index_, n.name);
    nodes_->push_back(std::move(n));
    return nodes_->back().outputs[0];
  }

 private:
  std::string prefix_;
  int index_;
  std::vector<NodeConfig>* nodes_;
};

LayerConfig linear(int64_t out, float std) {
  LayerConfig l;
  l.mutable_linear()->set_out_features(out);
  l.mutable_linear()->set_init_std(std);
  return l;
}

}  // namespace

StatusOr<std::vector<NodeConfig>> expand_transformer_block(const LayerConfig& cfg, const std::string& name, int index,
                                                           const std::string& input, int64_t d_model) {
  const auto& b = cfg.transformer_block();
  auto bad = [&](const std::string& msg) { return Status::InvalidArgument(layer_where(index, name) + ": " + msg); };
  if (b.n_head() <= 0) return bad("transformer_block.n_head must be > 0");
  if (b.count() <= 0) return bad("transformer_block.count must be > 0");
  if (b.mlp_ratio() <= 0) return bad("transformer_block.mlp_ratio must be > 0");
  if (!(b.dropout() >= 0.0f && b.dropout() < 1.0f)) return bad("transformer_block.dropout must be in [0, 1)");
  if (d_model <= 0 || d_model % b.n_head() != 0)
    return bad("the input's width " + std::to_string(d_model) + " does not divide into " +
               std::to_string(b.n_head()) + " heads");
  if (!cfg.input().empty() && cfg.input_size() != 1) return bad("transformer_block reads one input");

  const float std = 0.02f;
  const float proj_std = static_cast<float>(0.02 / std::sqrt(2.0 * static_cast<double>(b.count())));
  LayerConfig ln, attn, add, drop;
  ln.mutable_layer_norm();
  attn.mutable_causal_self_attention()->set_n_head(b.n_head());
  add.mutable_add();
  drop.mutable_dropout()->set_p(b.dropout());

  std::vector<NodeConfig> nodes;
  std::string x = input;
  for (int64_t i = 0; i < b.count(); ++i) {
    BlockBuilder bb(name + "." + std::to_string(i), index, &nodes);
    std::string h = bb.add("ln_1", ln, {x});
    h = bb.add("attn.c_attn", linear(3 * d_model, std), {h});
    h = bb.add("attn", attn, {h});
    h = bb.add("attn.c_proj", linear(d_model, proj_std), {h});
    if (b.dropout() > 0) h = bb.add("attn.drop", drop, {h});
    const std::string res1 = bb.add("res_1", add, {x, h});
    h = bb.add("ln_2", ln, {res1});
    // c_fc and GPT-2's GELU are one node, so a GPU computes bias + GELU in the GEMM.
    LayerConfig fc = linear(b.mlp_ratio() * d_model, std);
    fc.mutable_linear()->set_activation(config::LinearConfig::ACTIVATION_GELU_TANH);
    h = bb.add("mlp.c_fc", fc, {h});
    h = bb.add("mlp.c_proj", linear(d_model, proj_std), {h});
    if (b.dropout() > 0) h = bb.add("mlp.drop", drop, {h});
    x = bb.add("res_2", add, {res1, h});
  }
  if (!cfg.output().empty()) nodes.back().outputs = {cfg.output().begin(), cfg.output().end()};
  return nodes;
}

}  // namespace shardtrain

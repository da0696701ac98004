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
    return add_named(prefix_ + "." + local, std::move(layer), std::move(inputs), {prefix_ + "." + local})[0];
  }

  // A node with a full name and outputs of its own choosing; returns its outputs.
  std::vector<std::string> add_named(const std::string& name, LayerConfig layer, std::vector<std::string> inputs,
                                     std::vector<std::string> outputs) {
    NodeConfig n;
    n.name = name;
    layer.set_name(n.name);
    n.layer = std::move(layer);
    n.inputs = std::move(inputs);
    n.outputs = std::move(outputs);
    n.where = layer_where(index_, n.name);
    nodes_->push_back(std::move(n));
    return nodes_->back().outputs;
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
  LayerConfig ln, res_ln, attn, add, drop;
  ln.mutable_layer_norm();
  res_ln.mutable_residual_layer_norm();
  attn.mutable_causal_self_attention()->set_n_head(b.n_head());
  add.mutable_add();
  drop.mutable_dropout()->set_p(b.dropout());

  // Each residual add and the LayerNorm that reads it are one residual_layer_norm node (one
  // kernel on a GPU), keeping the unfused graph's value and parameter names: "<block>.ln_2"
  // writes res_1 and ln_2; "<block i+1>.ln_1" writes block i's res_2 and block i+1's ln_1.
  // Parameters are declared in the same order as unfused (res_2 declares none).
  std::vector<NodeConfig> nodes;
  std::string x = input;
  std::string ln1;  // block i's ln_1 when block i-1's residual node already computed it
  for (int64_t i = 0; i < b.count(); ++i) {
    const std::string prefix = name + "." + std::to_string(i);
    BlockBuilder bb(prefix, index, &nodes);
    std::string h = i == 0 ? bb.add("ln_1", ln, {x}) : ln1;
    h = bb.add("attn.c_attn", linear(3 * d_model, std), {h});
    h = bb.add("attn", attn, {h});
    h = bb.add("attn.c_proj", linear(d_model, proj_std), {h});
    if (b.dropout() > 0) h = bb.add("attn.drop", drop, {h});
    const auto res1_ln2 = bb.add_named(prefix + ".ln_2", res_ln, {x, h}, {prefix + ".res_1", prefix + ".ln_2"});
    const std::string& res1 = res1_ln2[0];
    h = res1_ln2[1];
    // c_fc and GPT-2's GELU are one node, so a GPU computes bias + GELU in the GEMM.
    LayerConfig fc = linear(b.mlp_ratio() * d_model, std);
    fc.mutable_linear()->set_activation(config::LinearConfig::ACTIVATION_GELU_TANH);
    h = bb.add("mlp.c_fc", fc, {h});
    h = bb.add("mlp.c_proj", linear(d_model, proj_std), {h});
    if (b.dropout() > 0) h = bb.add("mlp.drop", drop, {h});
    if (i + 1 == b.count()) {
      x = bb.add("res_2", add, {res1, h});  // the block's output: the user's ln_f reads it
    } else {
      const std::string next = name + "." + std::to_string(i + 1);
      const auto res2_ln1 = bb.add_named(next + ".ln_1", res_ln, {res1, h}, {prefix + ".res_2", next + ".ln_1"});
      x = res2_ln1[0];
      ln1 = res2_ln1[1];
    }
  }
  if (!cfg.output().empty()) nodes.back().outputs = {cfg.output().begin(), cfg.output().end()};
  return nodes;
}

}  // namespace shardtrain

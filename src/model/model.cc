#include "model/model.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "core/bfloat16.h"

#include "layers/layer_util.h"
#include "layers/registry.h"
#include "layers/softmax_xent.h"

namespace shardtrain {

struct Model::Value {
  std::string name;
  ValueSpec spec;
  int producer = -1;        // node index; -1 for a batch field
  bool needs_grad = false;  // some parameter's gradient flows through it
  Tensor act;               // [batch, spec...]
  Tensor grad;              // during backward only: from its first reader's backward (in
                            // reverse order) to its producer's, then back to the pool
};

struct Model::Node {
  std::unique_ptr<Layer> layer;
  std::vector<int> in, out;  // value ids
  bool run_backward = false;
  int first_param = 0;       // params declared by this node are [first_param, end_param)
  int end_param = 0;
};

namespace {
Status unknown_input(const std::string& where, const std::string& name) {
  return Status::InvalidArgument(where + ": input '" + name +
                                 "' is neither a data field nor the output of an earlier layer");
}
}  // namespace

Model::Model(Backend& backend) : be_(backend), store_(backend) {}
Model::~Model() = default;

Status Model::add_node(const NodeConfig& nc, int64_t num_classes) {
  std::map<std::string, int> by_name;
  for (size_t v = 0; v < values_.size(); ++v) by_name[values_[v]->name] = static_cast<int>(v);
  auto node = std::make_unique<Node>();
  std::vector<ValueSpec> in_specs;
  for (const std::string& name : nc.inputs) {
    auto it = by_name.find(name);
    if (it == by_name.end()) return unknown_input(nc.where, name);
    node->in.push_back(it->second);
    in_specs.push_back(values_[it->second]->spec);
  }
  LayerBuildContext lc;
  lc.num_classes = num_classes;
  // Logits from an LM head over a padded embedding table have padding columns.
  if (!node->in.empty() && values_[node->in[0]]->producer >= 0)
    lc.logits_padded = std::string(nodes_[values_[node->in[0]]->producer]->layer->type()) == "lm_head";
  ASSIGN_OR_RETURN(node->layer, make_layer(nc.layer, nc.name, nc.where, lc, be_));
  node->layer->set_index(static_cast<int>(nodes_.size()));
  node->first_param = static_cast<int>(store_.params().size());
  ASSIGN_OR_RETURN(std::vector<ValueSpec> out_specs, node->layer->configure(in_specs, store_));
  node->end_param = static_cast<int>(store_.params().size());
  if (out_specs.size() != nc.outputs.size())
    return Status::InvalidArgument(nc.where + ": " + node->layer->type() + " writes " +
                                   std::to_string(out_specs.size()) + " values but " +
                                   std::to_string(nc.outputs.size()) + " outputs are named");

  bool grad_flows = !node->layer->param_ids().empty();
  for (int v : node->in) grad_flows = grad_flows || values_[v]->needs_grad;
  node->run_backward = grad_flows;
  const int index = static_cast<int>(nodes_.size());
  for (size_t o = 0; o < out_specs.size(); ++o) {
    if (by_name.count(nc.outputs[o]))
      return Status::InvalidArgument(nc.where + ": output '" + nc.outputs[o] + "' is already a value of the model");
    auto v = std::make_unique<Value>();
    v->name = nc.outputs[o];
    v->spec = out_specs[o];
    v->producer = index;
    v->needs_grad = grad_flows && v->spec.dtype != DType::kInt32;
    by_name[v->name] = static_cast<int>(values_.size());
    node->out.push_back(static_cast<int>(values_.size()));
    values_.push_back(std::move(v));
  }
  nodes_.push_back(std::move(node));
  return Status::Ok();
}

StatusOr<std::unique_ptr<Model>> Model::build(const config::ModelConfig& cfg, const std::vector<ModelInput>& inputs,
                                              int64_t num_classes, Backend& backend, DType compute_dtype) {
  if (inputs.size() < 2) return Status::Internal("model: the batch must have an input and a label field");
  if (cfg.layer_size() == 0) return Status::InvalidArgument("model: no layers");
  if (compute_dtype != DType::kFloat32 && !(compute_dtype == DType::kBFloat16 && backend.supports_bf16()))
    return Status::InvalidArgument(std::string("model: ") + backend.name() + " cannot compute in " +
                                   dtype_name(compute_dtype) + " (train.precision BF16 needs device=cuda)");
  std::unique_ptr<Model> m(new Model(backend));
  m->inputs_ = inputs;
  m->store_.set_compute_dtype(compute_dtype);
  for (const ModelInput& in : inputs) {
    auto v = std::make_unique<Value>();
    v->name = in.name;
    v->spec = in.spec;
    // Floating-point data (images) enter the graph in the compute dtype, through an fp32
    // staging tensor that forward() converts.
    if (in.spec.dtype == DType::kFloat32) v->spec.dtype = compute_dtype;
    m->values_.push_back(std::move(v));
  }

  std::string prev = inputs[0].name, last_where;
  for (int i = 0; i < cfg.layer_size(); ++i) {
    const config::LayerConfig& lc = cfg.layer(i);
    const std::string where = "model.layer[" + std::to_string(i) + "]";
    if (lc.type_case() == config::LayerConfig::TYPE_NOT_SET) return Status::InvalidArgument(where + ": no layer type set");
    NodeConfig nc;
    nc.layer = lc;
    nc.name = lc.name().empty() ? layer_type_name(lc) + std::to_string(i) : lc.name();
    nc.where = layer_where(i, nc.name);
    nc.inputs.assign(lc.input().begin(), lc.input().end());
    nc.outputs.assign(lc.output().begin(), lc.output().end());
    if (nc.inputs.empty()) {
      if (lc.has_add() || lc.has_residual_layer_norm())
        return Status::InvalidArgument(nc.where + ": " + layer_type_name(lc) +
                                       " needs two named inputs (input: \"a\" input: \"b\")");
      nc.inputs = {prev};
      if (lc.has_softmax_cross_entropy()) nc.inputs.push_back(inputs[1].name);
    }
    if (nc.outputs.empty()) nc.outputs = {nc.name};

    std::vector<NodeConfig> expanded;
    if (lc.has_transformer_block()) {
      const Value* in = nullptr;
      for (const auto& v : m->values_)
        if (v->name == nc.inputs[0]) in = v.get();
      if (!in) return unknown_input(nc.where, nc.inputs[0]);
      const int64_t width = in->spec.shape.empty() ? 0 : in->spec.shape.back();
      ASSIGN_OR_RETURN(expanded, expand_transformer_block(lc, nc.name, i, nc.inputs[0], width));
      expanded.back().outputs = nc.outputs;  // the block's output is named like any layer's
    } else {
      expanded.push_back(std::move(nc));
    }
    for (const NodeConfig& n : expanded) RETURN_IF_ERROR(m->add_node(n, num_classes));
    prev = expanded.back().outputs[0];
    last_where = expanded.back().where;
  }
  if (std::string(m->nodes_.back()->layer->type()) != "softmax_cross_entropy") {
    NodeConfig loss;
    loss.layer.mutable_softmax_cross_entropy();
    loss.name = "loss";
    loss.inputs = {prev, inputs[1].name};
    loss.outputs = {"loss"};
    loss.where = last_where;  // a class-count mismatch is the last layer's to fix
    RETURN_IF_ERROR(m->add_node(loss, num_classes));
  }
  m->store_.allocate();
  return m;
}

std::string Model::summary() const {
  std::string out;
  for (const auto& n : nodes_) {
    int64_t params = 0;
    for (int p = n->first_param; p < n->end_param; ++p) params += shape_numel(store_.params()[p].shape);
    out += "  " + n->layer->name() + " (" + n->layer->type() + ") -> " + shape_str(values_[n->out[0]]->spec.shape) +
           (params ? ", " + std::to_string(params) + " params" : "") + "\n";
  }
  out += "  total " + std::to_string(num_params()) + " parameters";
  return out;
}

void Model::ensure_batch(int64_t n) {
  if (n == batch_) return;
  batch_ = n;
  grad_pool_.clear();
  for (auto& v : values_) {
    Shape full = {n};
    full.insert(full.end(), v->spec.shape.begin(), v->spec.shape.end());
    v->act = be_.alloc(full, v->spec.dtype);
  }
  staging_.assign(inputs_.size(), Tensor());
  for (size_t i = 0; i < inputs_.size(); ++i)
    if (inputs_[i].spec.dtype != values_[i]->spec.dtype) staging_[i] = be_.alloc(values_[i]->act.shape(), inputs_[i].spec.dtype);
}

// Gradient buffers live only while a value's gradient is being collected, so backward
// holds a few layers' worth at a time instead of one per value; freed ones are reused for
// the next value of the same size (on the same stream, so reuse is ordered on a GPU too).
Tensor Model::grad_buffer(const Shape& shape, DType dtype) {
  auto& free = grad_pool_[{shape_numel(shape), dtype}];
  if (free.empty()) return be_.alloc(shape, dtype);
  Tensor t = free.back().view(shape);
  free.pop_back();
  return t;
}

void Model::release_grad(Tensor& t) {
  if (!t.defined()) return;
  grad_pool_[{t.numel(), t.dtype()}].push_back(t);
  t = Tensor();
}

void Model::forward(const ForwardContext& ctx, const std::vector<const void*>& data, int64_t n) {
  ensure_batch(n);
  store_.refresh_compute_copy();
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (staging_[i].defined()) {
      be_.copy_from_host(staging_[i], data[i]);
      be_.convert(staging_[i], values_[i]->act);
    } else {
      be_.copy_from_host(values_[i]->act, data[i]);
    }
  }
  forward_nodes(ctx, nodes_.size(), [this](int v) -> Tensor& { return values_[v]->act; });
}

void Model::forward_nodes(const ForwardContext& ctx, size_t end, const std::function<Tensor&(int)>& act) {
  for (size_t k = 0; k < end; ++k) {
    Node& node = *nodes_[k];
    ConstTensors in;
    MutTensors out;
    for (int v : node.in) in.push_back(&act(v));
    for (int v : node.out) out.push_back(&act(v));
    store_.acquire(node.layer->param_ids());
    node.layer->forward(ctx, in, out);
    store_.release(node.layer->param_ids());
  }
}

void Model::backward(const ForwardContext& ctx, const GradsReadyFn& grads_ready) {
  for (size_t k = nodes_.size(); k-- > 0;) {
    Node& node = *nodes_[k];
    if (!node.run_backward) continue;
    ConstTensors in, out, dout;
    MutTensors din;
    for (int v : node.in) in.push_back(&values_[v]->act);
    for (int v : node.out) {
      Value& val = *values_[v];
      out.push_back(&val.act);
      // An output nothing downstream took a gradient from contributes zero (the loss
      // head's output is where backward starts: it takes none).
      if (val.needs_grad && !val.grad.defined() && k + 1 != nodes_.size()) {
        val.grad = grad_buffer(val.act.shape(), val.act.dtype());
        be_.fill(val.grad, 0.0f);
      }
      dout.push_back(val.grad.defined() ? &val.grad : nullptr);
    }
    // The first reader (in reverse order) of a value writes its gradient; later readers
    // write into scratch buffers of their own that are then added to it.
    std::vector<std::pair<Value*, Tensor>> add_later;
    add_later.reserve(node.in.size());
    for (int v : node.in) {
      Value& val = *values_[v];
      if (!val.needs_grad) {
        din.push_back(nullptr);
      } else if (!val.grad.defined()) {
        val.grad = grad_buffer(val.act.shape(), val.act.dtype());
        din.push_back(&val.grad);
      } else {
        add_later.emplace_back(&val, grad_buffer(val.act.shape(), val.act.dtype()));
        din.push_back(&add_later.back().second);
      }
    }
    store_.acquire(node.layer->param_ids());
    node.layer->backward(ctx, in, out, dout, din);
    store_.release(node.layer->param_ids());
    for (auto& [val, scratch] : add_later) {
      be_.add(val->grad, scratch, val->grad);
      release_grad(scratch);
    }
    // This node produced its outputs: their gradients have been used for the last time.
    for (int v : node.out) release_grad(values_[v]->grad);
    if (grads_ready && node.first_param < node.end_param) grads_ready(node.first_param);
  }
}

BatchResult Model::batch_stats(int64_t n) {
  auto& loss_node = *nodes_.back();
  auto& loss = static_cast<SoftmaxCrossEntropyLayer&>(*loss_node.layer);
  const Tensor& losses = values_[loss_node.out[0]]->act;
  BatchResult r;
  r.samples = n;
  r.predictions = losses.numel();
  r.loss_sum = be_.sum(losses.f32(), losses.numel());
  r.correct = loss.count_correct(values_[loss_node.in[0]]->act, values_[loss_node.in[1]]->act);
  return r;
}

BatchResult Model::forward_backward(const ForwardContext& ctx, const std::vector<const void*>& data, int64_t n,
                                    const GradsReadyFn& grads_ready) {
  store_.zero_grads();
  if (n == 0) {  // a rank with no samples in a short batch contributes zero gradients
    if (grads_ready) grads_ready(0);
    return {};
  }
  forward(ctx, data, n);
  backward(ctx, grads_ready);
  // Backward reads the logits but never writes them: the stats are still this batch's,
  // and reading them only now keeps the device busy meanwhile.
  return batch_stats(n);
}

int64_t Model::max_context() const {
  const ValueSpec& in = values_[0]->spec;
  return in.dtype == DType::kInt32 && in.shape.size() == 1 ? in.shape[0] : 0;
}

double Model::flops_per_token() const {
  if (max_context() == 0) return 0;
  double attention = 0;
  for (const auto& n : nodes_)
    if (std::string(n->layer->type()) == "causal_self_attention") {
      const Shape& qkv = values_[n->in[0]]->spec.shape;  // [T, 3C]
      attention += 6.0 * static_cast<double>(qkv[0]) * static_cast<double>(qkv[1] / 3);
    }
  return 6.0 * static_cast<double>(num_params()) + attention;
}

StatusOr<std::vector<float>> Model::decode(const int32_t* tokens, int64_t batch, int64_t n, int64_t pos) {
  const int64_t t = max_context();
  if (t == 0) return Status::InvalidArgument("decode: the model does not read token sequences");
  if (batch <= 0 || n <= 0 || pos < 0 || pos + n > t)
    return Status::InvalidArgument("decode: positions [" + std::to_string(pos) + ", " + std::to_string(pos + n) +
                                   ") do not fit the model's context of " + std::to_string(t));
  if (pos > 0 && batch != decode_batch_)
    return Status::InvalidArgument("decode: continuing " + std::to_string(decode_batch_) + " sequences with " +
                                   std::to_string(batch) + " (start again at position 0)");
  if (pos > decode_end_)
    return Status::InvalidArgument("decode: position " + std::to_string(pos) + " skips positions the cache does not "
                                   "hold (it ends at " + std::to_string(decode_end_) + ")");
  decode_batch_ = batch;
  decode_end_ = pos + n;
  // Every value is a sequence [T, ...]; this call's have n positions.
  decode_acts_.resize(values_.size());
  for (size_t v = 0; v < values_.size(); ++v) {
    Shape s = {batch, n};
    s.insert(s.end(), values_[v]->spec.shape.begin() + 1, values_[v]->spec.shape.end());
    if (!decode_acts_[v].defined() || decode_acts_[v].shape() != s) decode_acts_[v] = be_.alloc(s, values_[v]->spec.dtype);
  }
  be_.copy_from_host(decode_acts_[0], tokens);
  // A generation (pos 0 and the calls continuing it) runs with the weights it started with.
  if (pos == 0) store_.refresh_compute_copy();
  ForwardContext ctx;
  ctx.training = false;
  ctx.incremental = true;
  ctx.position = pos;
  // Everything but the loss head.
  forward_nodes(ctx, nodes_.size() - 1, [this](int v) -> Tensor& { return decode_acts_[v]; });
  const Tensor& logits = decode_acts_[nodes_.back()->in[0]];
  const int64_t width = logits.dim(-1);
  // Only each sequence's last row crosses to the host (widened there when bf16).
  const size_t elem = dtype_size(logits.dtype());
  std::vector<char> rows(batch * width * elem);
  for (int64_t b = 0; b < batch; ++b)
    be_.memcpy_to_host(rows.data() + b * width * elem, logits.data<char>() + (b * n + n - 1) * width * elem,
                       width * elem);
  RETURN_IF_ERROR(be_.synchronize());
  std::vector<float> last(batch * width);
  if (logits.dtype() == DType::kBFloat16) {
    const bf16* h = reinterpret_cast<const bf16*>(rows.data());
    for (size_t i = 0; i < last.size(); ++i) last[i] = bf16_to_float(h[i]);
  } else {
    std::memcpy(last.data(), rows.data(), rows.size());
  }
  return last;
}

BatchResult Model::evaluate(const std::vector<const void*>& data, int64_t n) {
  if (n == 0) return {};
  ForwardContext ctx;
  ctx.training = false;
  forward(ctx, data, n);
  return batch_stats(n);
}

}  // namespace shardtrain

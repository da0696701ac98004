#include "model/model.h"

#include <set>

#include "layers/registry.h"

namespace shardtrain {

StatusOr<std::unique_ptr<Model>> Model::build(const config::ModelConfig& cfg, const Shape& sample_shape,
                                              int64_t num_classes, Backend& backend) {
  std::unique_ptr<Model> m(new Model(backend));
  m->num_classes_ = num_classes;
  m->shapes_.push_back(sample_shape);
  std::vector<std::vector<ParamSpec>> specs;
  for (int i = 0; i < cfg.layer_size(); ++i) {
    ASSIGN_OR_RETURN(std::unique_ptr<Layer> layer, make_layer(cfg.layer(i), i, backend));
    layer->set_index(i);
    auto out = layer->configure(m->shapes_.back());
    if (!out.ok()) return out.status();
    m->shapes_.push_back(out.value());
    specs.push_back(layer->param_specs());
    m->layers_.push_back(std::move(layer));
  }
  if (m->layers_.empty()) return Status::InvalidArgument("model: no layers");
  if (m->shapes_.back() != Shape{num_classes}) {
    const auto& last = *m->layers_.back();
    return Status::InvalidArgument("model.layer[" + std::to_string(m->layers_.size() - 1) + "] (" + last.name() +
                                   "): the last layer outputs " + shape_str(m->shapes_.back()) +
                                   " per sample but the loss needs [" + std::to_string(num_classes) +
                                   "] (data.num_classes)");
  }

  // Lay every parameter out in one flat buffer, in layer order.
  int64_t total = 0;
  std::set<std::string> names;
  for (size_t i = 0; i < specs.size(); ++i) {
    m->layer_first_param_.push_back(static_cast<int>(m->params_.size()));
    for (const ParamSpec& s : specs[i]) {
      ParamInfo p{m->layers_[i]->name() + "." + s.name, s.shape, total, s.fan_in};
      if (!names.insert(p.name).second)
        return Status::InvalidArgument("model: two parameters named " + p.name + " (rename a layer)");
      total += shape_numel(s.shape);
      m->params_.push_back(std::move(p));
    }
  }
  m->layer_first_param_.push_back(static_cast<int>(m->params_.size()));  // end sentinel
  m->flat_params_ = backend.alloc({total});
  m->flat_grads_ = backend.alloc({total});
  size_t k = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    std::vector<Tensor> ps, gs;
    for (size_t j = 0; j < specs[i].size(); ++j, ++k) {
      const ParamInfo& p = m->params_[k];
      ps.push_back(m->flat_params_.slice(p.offset, p.shape));
      gs.push_back(m->flat_grads_.slice(p.offset, p.shape));
    }
    m->layers_[i]->bind(std::move(ps), std::move(gs));
  }
  return m;
}

std::string Model::summary() const {
  std::string out;
  for (size_t i = 0; i < layers_.size(); ++i) {
    int64_t n = 0;
    for (const ParamSpec& s : layers_[i]->param_specs()) n += shape_numel(s.shape);
    out += "  " + layers_[i]->name() + " (" + layers_[i]->type() + ") -> " + shape_str(shapes_[i + 1]) +
           (n ? ", " + std::to_string(n) + " params" : "") + "\n";
  }
  out += "  total " + std::to_string(num_params()) + " parameters";
  return out;
}

void Model::ensure_batch(int64_t n) {
  if (n == batch_) return;
  batch_ = n;
  acts_.clear();
  grads_.clear();
  for (const Shape& s : shapes_) {
    Shape full = {n};
    full.insert(full.end(), s.begin(), s.end());
    acts_.push_back(be_.alloc(full));
    grads_.push_back(be_.alloc(full));
  }
  labels_ = be_.alloc({n}, DType::kInt32);
  stats_ = be_.alloc({n, 2});
  losses_ = be_.alloc({n});
}

void Model::forward(const ForwardContext& ctx, const float* images, const int32_t* labels, int64_t n) {
  ensure_batch(n);
  be_.copy_from_host(acts_[0], images);
  be_.copy_from_host(labels_, labels);
  for (size_t i = 0; i < layers_.size(); ++i) layers_[i]->forward(ctx, acts_[i], acts_[i + 1]);
  be_.softmax_xent_forward(acts_.back().f32(), num_classes_, labels_.data<int32_t>(), n, num_classes_, stats_.f32(),
                           losses_.f32());
}

BatchResult Model::batch_stats(int64_t n) {
  BatchResult r;
  r.samples = n;
  r.loss_sum = be_.sum(losses_.f32(), n);
  r.correct = be_.count_correct(acts_.back().f32(), num_classes_, labels_.data<int32_t>(), n, num_classes_);
  return r;
}

BatchResult Model::forward_backward(const ForwardContext& ctx, const float* images, const int32_t* labels, int64_t n,
                                    float grad_scale, const GradsReadyFn& grads_ready) {
  if (n == 0) {  // a rank with no samples in a short batch contributes zero gradients
    be_.fill(flat_grads_, 0.0f);
    if (grads_ready) grads_ready(0);
    return {};
  }
  be_.fill(flat_grads_, 0.0f);
  forward(ctx, images, labels, n);
  be_.softmax_xent_backward(acts_.back().f32(), num_classes_, stats_.f32(), labels_.data<int32_t>(), n, num_classes_,
                            grad_scale, grads_.back().f32());
  for (size_t i = layers_.size(); i-- > 0;) {
    Tensor* dx = i > 0 ? &grads_[i] : nullptr;  // no gradient w.r.t. the input images
    layers_[i]->backward(ctx, acts_[i], acts_[i + 1], grads_[i + 1], dx);
    if (grads_ready && layer_first_param_[i] < layer_first_param_[i + 1]) grads_ready(layer_first_param_[i]);
  }
  // Backward reads probs and logits but never writes them: the stats are still this
  // batch's, and reading them only now keeps the device busy meanwhile.
  return batch_stats(n);
}

BatchResult Model::evaluate(const float* images, const int32_t* labels, int64_t n) {
  if (n == 0) return {};
  ForwardContext ctx;
  ctx.training = false;
  forward(ctx, images, labels, n);
  return batch_stats(n);
}

}  // namespace shardtrain

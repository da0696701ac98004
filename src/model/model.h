// Model: the layer stack built from config, with every parameter and gradient a view into
// one flat buffer each. Flat buffers are what the communicator reduces and the optimizer
// steps over (one call each per step), and what checkpoints split back into named tensors.
//
// The loss is softmax cross-entropy. Gradients are scaled by 1/global_batch, so summing
// them over ranks (all-reduce SUM) gives exactly the gradient of the global-batch mean
// loss, whatever the world size.
// Thread-safety: none; owned and used by the trainer thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/shardtrain.pb.h"
#include "layers/layer.h"

namespace shardtrain {

struct ParamInfo {
  std::string name;  // "fc1.weight"
  Shape shape;
  int64_t offset;    // into the flat buffers
  int64_t fan_in;
};

struct BatchResult {
  double loss_sum = 0;   // sum over the local samples of the per-sample loss
  int64_t correct = 0;   // local samples whose argmax equals the label
  int64_t samples = 0;
};

// Called during backward, right after a layer's backward was issued: every parameter
// gradient with index >= first_param (params() order) is now final for this step. On a
// GPU "final" means issued on the backend's stream, which is what a communicator that
// orders itself after that stream needs.
using GradsReadyFn = std::function<void(int first_param)>;

class Model {
 public:
  // `sample_shape` is one input sample's shape (e.g. {1, 28, 28}); the last layer must
  // output [num_classes]. Errors name the layer (model.layer[i] (name): ...).
  static StatusOr<std::unique_ptr<Model>> build(const config::ModelConfig& cfg, const Shape& sample_shape,
                                                int64_t num_classes, Backend& backend);

  const std::vector<ParamInfo>& params() const { return params_; }
  int64_t num_params() const { return flat_params_.numel(); }
  Backend& backend() { return be_; }
  Tensor& flat_params() { return flat_params_; }
  Tensor& flat_grads() { return flat_grads_; }
  std::string summary() const;  // one line per layer: name, type, output shape, #params

  // Seeded init (PyTorch default ranges), identical on every rank and device.
  void init_params(uint64_t seed);

  // Forward, loss and backward on a local batch of n samples (host arrays), leaving the
  // parameter gradients (scaled by grad_scale, e.g. 1/global_batch) in flat_grads().
  // grads_ready (optional) is told as backward finishes each layer with parameters.
  BatchResult forward_backward(const ForwardContext& ctx, const float* images, const int32_t* labels, int64_t n,
                               float grad_scale, const GradsReadyFn& grads_ready = {});
  // Forward and loss only (ctx.training = false).
  BatchResult evaluate(const float* images, const int32_t* labels, int64_t n);

 private:
  explicit Model(Backend& backend) : be_(backend) {}
  // Makes activations for batch size n (reallocated only when n changes).
  void ensure_batch(int64_t n);
  void forward(const ForwardContext& ctx, const float* images, const int32_t* labels, int64_t n);
  // Loss sum and correct count of the last forward (reads them back to the host, so on a
  // GPU it waits for the work issued so far: call it after issuing backward).
  BatchResult batch_stats(int64_t n);

  Backend& be_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Shape> shapes_;  // per-sample shapes: shapes_[0] input, shapes_[i+1] layer i output
  std::vector<ParamInfo> params_;
  // Index into params_ of each layer's first parameter, plus params_.size() at the end, so
  // layer i owns params [layer_first_param_[i], layer_first_param_[i + 1]).
  std::vector<int> layer_first_param_;
  int64_t num_classes_ = 0;
  Tensor flat_params_, flat_grads_;

  int64_t batch_ = -1;
  std::vector<Tensor> acts_;   // acts_[i]: input of layer i; acts_.back(): logits
  std::vector<Tensor> grads_;  // grads_[i]: dL/d acts_[i]
  Tensor labels_, stats_, losses_;
};

}  // namespace shardtrain

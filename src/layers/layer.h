// Layer: one node of the model graph, written once against Backend& (no device branches).
//
// Lifecycle, driven by model/:
//   1. constructed by the registry from its LayerConfig;
//   2. configure(per-sample input shape) -> per-sample output shape, or an error naming
//      the layer (e.g. a kernel larger than the input);
//   3. bind(params, grads): views into the Model's flat parameter and gradient buffers,
//      in param_specs() order; parameter values are initialised by the Model;
//   4. forward / backward per step with batch-sized tensors the Model allocates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "core/tensor.h"

namespace shardtrain {

// Initialisation follows PyTorch's defaults for Linear and Conv2d: weights and biases
// uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)].
struct ParamSpec {
  std::string name;  // local name: "weight", "bias"
  Shape shape;
  int64_t fan_in;
};

// What a forward/backward call needs to know beyond its tensors.
struct ForwardContext {
  bool training = true;
  uint64_t seed = 0;         // job seed (dropout keys)
  int64_t step = 0;          // optimizer step being computed (dropout keys)
  int64_t sample_offset = 0; // global index of this rank's first sample in the batch
  int64_t global_batch = 0;  // samples in the global batch (dropout keys)
};

class Layer {
 public:
  Layer(std::string name, Backend& backend) : name_(std::move(name)), be_(backend) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  virtual const char* type() const = 0;
  const std::string& name() const { return name_; }
  // Position in the model; part of dropout keys.
  int index() const { return index_; }
  void set_index(int i) { index_ = i; }

  virtual StatusOr<Shape> configure(const Shape& in_shape) = 0;
  virtual std::vector<ParamSpec> param_specs() const { return {}; }
  void bind(std::vector<Tensor> params, std::vector<Tensor> grads) {
    params_ = std::move(params);
    grads_ = std::move(grads);
  }

  // x: [N, in_shape...]; y: [N, out_shape...], preallocated.
  virtual void forward(const ForwardContext& ctx, const Tensor& x, Tensor& y) = 0;
  // Overwrites this layer's parameter gradients; writes dx when non-null.
  // x and y are the tensors of the matching forward call.
  // REQUIRES: that forward was this layer's last one: layers may keep what it computed
  // (Conv2d its im2col columns, MaxPool2d its argmax) instead of recomputing it.
  virtual void backward(const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy,
                        Tensor* dx) = 0;

 protected:
  std::string name_;
  Backend& be_;
  int index_ = 0;
  std::vector<Tensor> params_;
  std::vector<Tensor> grads_;
};

}  // namespace shardtrain

// Layer: one node of the model graph, written once against Backend& (no device branches).
//
// A node reads one or more named values and writes one or more (model/graph.h wires them
// from the config). Per-sample specs (shape without the batch dimension, dtype) flow
// through configure(); tensors passed to forward/backward carry the batch dimension first.
//
// Lifecycle, driven by model/:
//   1. constructed by the registry from its LayerConfig;
//   2. configure(input specs, store) -> output specs, or an error naming the layer; a layer
//      declares its parameters in the store here (or finds a tied one by name);
//   3. forward / backward per step, with the layer's parameters acquired from the store
//      around each call.
//
// Gradients: backward ADDS each parameter's gradient into the store's gradient (zeroed
// once per step by the model), so a parameter used by two layers gets both contributions.
// Input gradients din[i] are overwritten; din[i] is null when input i needs none (data,
// integer values, values no parameter depends on).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "core/tensor.h"
#include "model/param_store.h"

namespace shardtrain {

// A value as one sample sees it: shape without the batch dimension, and dtype.
struct ValueSpec {
  Shape shape;
  DType dtype = DType::kFloat32;
};

// What a forward/backward call needs to know beyond its tensors.
struct ForwardContext {
  bool training = true;
  uint64_t seed = 0;         // job seed (dropout keys)
  int64_t step = 0;          // optimizer step being computed (dropout keys)
  int64_t sample_offset = 0; // global index of this rank's first sample in the batch
  int64_t global_batch = 0;  // samples in this global batch (a short last eval batch has fewer)
  float grad_scale = 1.0f;   // the loss head scales its gradient by this (1 / global_batch)
  // Incremental decoding (generation): the call holds positions [position, position + n)
  // of its sequences, and attention layers attend over their cache of earlier positions
  // (position 0 starts a new cache). Forward only.
  bool incremental = false;
  int64_t position = 0;
};

using ConstTensors = std::vector<const Tensor*>;
using MutTensors = std::vector<Tensor*>;

class Layer {
 public:
  Layer(std::string name, Backend& backend) : name_(std::move(name)), be_(backend) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  virtual const char* type() const = 0;
  const std::string& name() const { return name_; }
  // Position in the model graph; part of dropout keys and of error messages.
  int index() const { return index_; }
  void set_index(int i) { index_ = i; }
  // How error messages name this layer ("model.layer[3] (fc1)"); set by the registry.
  const std::string& where() const { return where_; }
  void set_where(std::string w) { where_ = std::move(w); }

  // How many inputs the layer reads (the graph wires the default ones from it).
  virtual int num_inputs() const { return 1; }
  virtual StatusOr<std::vector<ValueSpec>> configure(const std::vector<ValueSpec>& in, ParamStore& store) = 0;
  // The parameters this layer uses, in the order it declared or found them.
  const std::vector<ParamId>& param_ids() const { return param_ids_; }

  virtual void forward(const ForwardContext& ctx, const ConstTensors& in, const MutTensors& out) = 0;
  // REQUIRES: the matching forward was this layer's last one: layers may keep what it
  // computed (Conv2d its im2col columns, attention its log-sum-exp) instead of recomputing.
  virtual void backward(const ForwardContext& ctx, const ConstTensors& in, const ConstTensors& out,
                        const ConstTensors& dout, const MutTensors& din) = 0;

 protected:
  // During configure: a new parameter "<layer name>.<local>" / an existing one by full name.
  Status declare_param(ParamStore& store, const std::string& local, const Shape& shape, ParamInit init);
  Status use_param(ParamStore& store, const std::string& full_name);
  // The parameter as layers compute with it: fp32, or the store's bf16 copy under bf16.
  const Tensor& param(int i) const { return store_->compute_value(param_ids_[i]); }
  Tensor& grad(int i) { return store_->grad(param_ids_[i]); }
  Status error(const std::string& msg) const { return Status::InvalidArgument(where_ + ": " + msg); }

  std::string name_;
  std::string where_;
  Backend& be_;
  int index_ = 0;
  ParamStore* store_ = nullptr;
  std::vector<ParamId> param_ids_;
};

// The common case: one floating-point input, one output of the same dtype (float32, or
// bf16 under mixed precision unless the layer says it computes in float32 only).
// Subclasses implement the *_one methods.
class UnaryLayer : public Layer {
 public:
  using Layer::Layer;
  StatusOr<std::vector<ValueSpec>> configure(const std::vector<ValueSpec>& in, ParamStore& store) final;
  void forward(const ForwardContext& ctx, const ConstTensors& in, const MutTensors& out) final {
    forward_one(ctx, *in[0], *out[0]);
  }
  void backward(const ForwardContext& ctx, const ConstTensors& in, const ConstTensors& out, const ConstTensors& dout,
                const MutTensors& din) final {
    backward_one(ctx, *in[0], *out[0], *dout[0], din[0]);
  }

 protected:
  // Per-sample input shape -> per-sample output shape; may declare parameters (store_ is set).
  virtual StatusOr<Shape> configure_one(const Shape& in_shape) = 0;
  // Whether the layer computes on bf16 values (conv2d and max_pool2d: float32 only).
  virtual bool supports_bf16() const { return true; }
  virtual void forward_one(const ForwardContext& ctx, const Tensor& x, Tensor& y) = 0;
  // dx may be null (no input gradient wanted).
  virtual void backward_one(const ForwardContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy,
                            Tensor* dx) = 0;
  Status declare(const std::string& local, const Shape& shape, ParamInit init) {
    return declare_param(*store_, local, shape, init);
  }
};

}  // namespace shardtrain

// Model: a graph of layers over named values, built from config, with every parameter in
// a ParamStore (one flat buffer for parameters and one for gradients).
//
// Values: the batch's fields (e.g. "images" and "labels", or "tokens" and "targets") and
// every node's outputs. Nodes run in config order, which must be a topological order (a
// node reads only batch fields and earlier outputs). The last node is the loss head
// (softmax cross-entropy, appended when the config has none), whose per-position losses
// are the model's loss.
//
// Backward runs the nodes in reverse. A value read by several nodes (a residual stream)
// receives the sum of their input gradients; parameter gradients accumulate in the store,
// zeroed once per step. Nodes whose inputs need no gradient and that have no parameters
// are skipped, as are input gradients nobody needs (the data's).
//
// Gradients are scaled so that summing them over ranks (all-reduce SUM) gives exactly
// the gradient of the mean loss over every position of the global batch, whatever the
// world size: ctx.grad_scale is 1/global_batch and the loss divides by its positions.
// Thread-safety: none; owned and used by the trainer thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/shardtrain.pb.h"
#include "layers/layer.h"
#include "model/graph_config.h"
#include "model/param_store.h"

namespace shardtrain {

// One field of the batch the model reads: its name and per-sample spec.
struct ModelInput {
  std::string name;
  ValueSpec spec;
};

struct BatchResult {
  double loss_sum = 0;      // sum of the per-position losses of the local samples
  int64_t correct = 0;      // positions whose argmax equals the label
  int64_t samples = 0;      // local samples
  int64_t predictions = 0;  // positions (samples x positions per sample)
};

// Called during backward, right after a node's backward was issued: every parameter
// gradient with index >= first_param (params() order) is now final for this step. On a
// GPU "final" means issued on the backend's stream, which is what a communicator that
// orders itself after that stream needs.
using GradsReadyFn = std::function<void(int first_param)>;

class Model {
 public:
  // `inputs`: the batch's fields; the first is what the first layer reads by default, the
  // second the labels the loss head reads by default. Errors name the layer
  // (model.layer[i] (name): ...). compute_dtype: what activations and the parameters'
  // compute copy are (kBFloat16: mixed precision, on backends with supports_bf16(); the
  // master weights, optimizer state and gradients stay fp32 either way).
  static StatusOr<std::unique_ptr<Model>> build(const config::ModelConfig& cfg, const std::vector<ModelInput>& inputs,
                                                int64_t num_classes, Backend& backend,
                                                DType compute_dtype = DType::kFloat32);
  ~Model();

  const std::vector<ModelInput>& inputs() const { return inputs_; }
  ParamStore& store() { return store_; }
  const std::vector<ParamInfo>& params() const { return store_.params(); }
  int64_t num_params() const { return store_.num_params(); }
  Backend& backend() { return be_; }
  Tensor& flat_params() { return store_.flat_params(); }
  Tensor& flat_grads() { return store_.flat_grads(); }
  std::string summary() const;  // one line per node: name, type, output shape, #params

  // Seeded init, identical on every rank and device.
  void init_params(uint64_t seed) { store_.init(seed); }

  // Forward, loss and backward on n local samples; `data[i]` is the host array of
  // inputs()[i], [n, spec...] of its dtype. Leaves this step's parameter gradients in
  // flat_grads(); grads_ready (optional) is told as they become final.
  BatchResult forward_backward(const ForwardContext& ctx, const std::vector<const void*>& data, int64_t n,
                               const GradsReadyFn& grads_ready = {});
  // Forward and loss only (ctx.training = false).
  BatchResult evaluate(const std::vector<const void*>& data, int64_t n);

  // Generation, for language models (the first input is int32 tokens [T]): runs the
  // graph without the loss head on n new positions [pos, pos + n) of `batch` sequences
  // (`tokens` host [batch, n]); earlier positions were run by the previous calls since
  // one with pos = 0, and attention layers keep their keys and values (a KV cache), so a
  // new token costs one position, not a pass over the whole context. Returns the logits of
  // each sequence's last new position, host [batch, L] (L = the logits' width).
  // InvalidArgument unless the model reads tokens and 0 <= pos, pos + n <= T.
  StatusOr<std::vector<float>> decode(const int32_t* tokens, int64_t batch, int64_t n, int64_t pos);
  // T of decode(): the longest context.
  int64_t max_context() const;
  // The dtype layers compute in (build's compute_dtype).
  DType compute_dtype() const { return store_.compute_dtype(); }
  // Training FLOPs per token of a language model, as llm.c and the PaLM paper count them:
  // 6N for the matmuls with every parameter (forward and backward) plus 6·T·C per causal
  // attention layer (scores and weighted values over a causal context of T, C wide).
  // 0 for models that do not read token sequences.
  double flops_per_token() const;

 private:
  struct Node;
  struct Value;
  explicit Model(Backend& backend);
  Status add_node(const NodeConfig& nc, int64_t num_classes);
  void ensure_batch(int64_t n);  // activations for n samples (reallocated when n changes)
  Tensor grad_buffer(const Shape& shape, DType dtype);  // from grad_pool_, or newly allocated
  void release_grad(Tensor& t);            // back to grad_pool_; t becomes undefined
  void forward(const ForwardContext& ctx, const std::vector<const void*>& data, int64_t n);
  // Runs nodes [0, end) forward on the activations act(value id) (training's or decode's).
  void forward_nodes(const ForwardContext& ctx, size_t end, const std::function<Tensor&(int)>& act);
  void backward(const ForwardContext& ctx, const GradsReadyFn& grads_ready);
  BatchResult batch_stats(int64_t n);  // of the last forward; reads back to the host

  Backend& be_;
  ParamStore store_;
  std::vector<ModelInput> inputs_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<std::unique_ptr<Value>> values_;
  int64_t batch_ = -1;
  std::map<std::pair<int64_t, DType>, std::vector<Tensor>> grad_pool_;  // free gradient buffers by (numel, dtype)
  std::vector<Tensor> staging_;  // per input: fp32 host data's landing place when the value is bf16
  std::vector<Tensor> decode_acts_;  // decode(): per value, for the last (batch, n)
  int64_t decode_batch_ = 0;         // decode(): sequences in the caches
  int64_t decode_end_ = 0;           // decode(): positions [0, decode_end_) are cached
};

}  // namespace shardtrain

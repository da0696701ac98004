// Optimizers over the model's flat parameter/gradient buffers (PyTorch semantics), and
// gradient clipping. Every update goes through Backend primitives, so the same code runs
// on every device and is as deterministic as the backend.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "config/shardtrain.pb.h"
#include "core/status.h"
#include "core/tensor.h"

namespace shardtrain {

// A run of the flat buffer that takes weight decay (decay) or not: with
// optimizer.decay_matrices_only, biases and LayerNorm parameters do not (nanoGPT's groups).
struct DecaySpan {
  int64_t offset, numel;
  bool decay;
};

// The spans for `params` (offset, shape of each, in layout order): one decaying span for
// everything unless matrices_only, then adjacent parameters of the same kind merged.
std::vector<DecaySpan> decay_spans(const std::vector<std::pair<int64_t, Shape>>& params, int64_t total,
                                   bool matrices_only);

class Optimizer {
 public:
  // `params` and `grads` are the model's flat fp32 buffers [P] on `backend`'s device; the
  // optimizer keeps shallow references to them and to `backend` (which must outlive it).
  // State buffers are allocated zero-filled. `total_steps` (>= 1) drives the lr schedule.
  // REQUIRES: a validated cfg. Returns InvalidArgument if the buffers do not match.
  // `spans` cover [0, P) in order (decay_spans); empty means one decaying span.
  static StatusOr<std::unique_ptr<Optimizer>> create(const config::OptimizerConfig& cfg, int64_t total_steps,
                                                     Backend& backend, Tensor params, Tensor grads,
                                                     std::vector<DecaySpan> spans = {});
  virtual ~Optimizer();

  virtual const char* kind() const = 0;  // "sgd" | "adamw"

  // Applies one update for the step with 0-based index `step`, with
  // lr = schedule_lr(cfg, step, total_steps), then increments steps_taken(). Returns the lr.
  float step(int64_t step);

  // Updates applied so far. This (not `step`'s argument) is what SGD's "first step"
  // (momentum buffer = g) and AdamW's bias correction (t = steps_taken() + 1) use, so a
  // checkpoint must save it and a resumed run restore it with set_steps_taken().
  int64_t steps_taken() const { return steps_taken_; }
  void set_steps_taken(int64_t n) { steps_taken_ = n; }

  // Named state buffers, each a flat [P] tensor like params:
  //   SGD, momentum > 0: {"momentum_buffer"};  SGD, momentum == 0: {};
  //   AdamW: {"exp_avg", "exp_avg_sq"}.
  // Checkpointing reads them and restores by writing into them (or replacing a tensor with
  // one of the same shape, dtype and device); names and order are fixed.
  std::vector<std::pair<std::string, Tensor>>& state() { return state_; }

 protected:
  Optimizer(const config::OptimizerConfig& cfg, int64_t total_steps, Backend& backend, Tensor params, Tensor grads);
  // One update of elements [offset, offset + n) at learning rate `lr` and weight decay
  // `wd`; steps_taken() is still the count before this update.
  virtual void apply(float lr, float wd, int64_t offset, int64_t n) = 0;
  float* state_f32(size_t i, int64_t offset) { return state_[i].second.f32() + offset; }

  config::OptimizerConfig cfg_;
  int64_t total_steps_;
  Backend& backend_;
  Tensor params_, grads_;
  int64_t steps_taken_ = 0;
  std::vector<std::pair<std::string, Tensor>> state_;
  std::vector<DecaySpan> spans_;
};

// Clips by global L2 norm as torch.nn.utils.clip_grad_norm_: if max_norm > 0 and
// norm > max_norm, grads *= max_norm / (norm + 1e-6). Returns the norm before clipping
// (NaN/inf are returned as they are, and such grads are left unscaled for the caller to
// detect). The norm is computed by backend.sum_squares (fixed order, in double).
double clip_grad_norm(Backend& backend, Tensor& grads, float max_norm);
// The two halves of clip_grad_norm, for callers that inspect the norm before clipping:
// the global L2 norm, and the scaling for a norm computed by grad_global_norm.
double grad_global_norm(Backend& backend, const Tensor& grads);
void clip_grads_to_norm(Backend& backend, Tensor& grads, double norm, float max_norm);

}  // namespace shardtrain

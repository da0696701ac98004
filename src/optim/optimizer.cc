#include "optim/optimizer.h"

#include <cmath>

#include "optim/schedule.h"

namespace shardtrain {
namespace {

// PyTorch torch.optim.SGD (non-Nesterov, dampening 0); see Backend::sgd_step.
class SgdOptimizer final : public Optimizer {
 public:
  SgdOptimizer(const config::OptimizerConfig& cfg, int64_t total_steps, Backend& backend, Tensor params, Tensor grads)
      : Optimizer(cfg, total_steps, backend, params, grads) {
    if (cfg.momentum() > 0) state_.emplace_back("momentum_buffer", backend.alloc(params.shape(), DType::kFloat32));
  }
  const char* kind() const override { return "sgd"; }

 protected:
  void apply(float lr, float wd, int64_t offset, int64_t n) override {
    const SgdParams hp{lr, cfg_.momentum(), wd};
    float* buf = state_.empty() ? nullptr : state_f32(0, offset);
    backend_.sgd_step(params_.f32() + offset, grads_.f32() + offset, buf, n, hp, steps_taken_ == 0);
  }
};

// PyTorch torch.optim.AdamW (amsgrad off); see Backend::adamw_step.
class AdamWOptimizer final : public Optimizer {
 public:
  AdamWOptimizer(const config::OptimizerConfig& cfg, int64_t total_steps, Backend& backend, Tensor params,
                 Tensor grads)
      : Optimizer(cfg, total_steps, backend, params, grads) {
    state_.emplace_back("exp_avg", backend.alloc(params.shape(), DType::kFloat32));
    state_.emplace_back("exp_avg_sq", backend.alloc(params.shape(), DType::kFloat32));
  }
  const char* kind() const override { return "adamw"; }

 protected:
  void apply(float lr, float wd, int64_t offset, int64_t n) override {
    const AdamWParams hp{lr, cfg_.beta1(), cfg_.beta2(), cfg_.eps(), wd, steps_taken_ + 1};
    backend_.adamw_step(params_.f32() + offset, grads_.f32() + offset, state_f32(0, offset), state_f32(1, offset), n,
                        hp);
  }
};

}  // namespace

Optimizer::Optimizer(const config::OptimizerConfig& cfg, int64_t total_steps, Backend& backend, Tensor params,
                     Tensor grads)
    : cfg_(cfg), total_steps_(total_steps), backend_(backend), params_(std::move(params)), grads_(std::move(grads)) {}

Optimizer::~Optimizer() = default;

std::vector<DecaySpan> decay_spans(const std::vector<std::pair<int64_t, Shape>>& params, int64_t total,
                                   bool matrices_only) {
  if (!matrices_only) return {{0, total, true}};
  std::vector<DecaySpan> spans;
  for (const auto& [offset, shape] : params) {
    const bool decay = shape.size() >= 2;
    const int64_t n = shape_numel(shape);
    if (!spans.empty() && spans.back().decay == decay && spans.back().offset + spans.back().numel == offset)
      spans.back().numel += n;
    else
      spans.push_back({offset, n, decay});
  }
  return spans;
}

StatusOr<std::unique_ptr<Optimizer>> Optimizer::create(const config::OptimizerConfig& cfg, int64_t total_steps,
                                                       Backend& backend, Tensor params, Tensor grads,
                                                       std::vector<DecaySpan> spans) {
  if (total_steps < 1) return Status::InvalidArgument("optimizer: total_steps must be >= 1 (got " + std::to_string(total_steps) + ")");
  if (!params.defined() || !grads.defined()) return Status::InvalidArgument("optimizer: params or grads not allocated");
  if (params.dtype() != DType::kFloat32 || grads.dtype() != DType::kFloat32)
    return Status::InvalidArgument("optimizer: params and grads must be float32");
  if (params.numel() != grads.numel())
    return Status::InvalidArgument("optimizer: params " + shape_str(params.shape()) + " and grads " +
                                   shape_str(grads.shape()) + " differ in size");
  if (params.device() != backend.device() || grads.device() != backend.device())
    return Status::InvalidArgument(std::string("optimizer: params/grads are not on the backend's device (") +
                                   device_name(backend.device()) + ")");
  // State buffers are flat like the parameters, whatever shape the caller passed.
  params = params.view({params.numel()});
  grads = grads.view({grads.numel()});
  if (spans.empty()) spans = {{0, params.numel(), true}};
  int64_t covered = 0;
  for (const DecaySpan& s : spans) {
    if (s.offset != covered || s.numel < 0) return Status::InvalidArgument("optimizer: decay spans do not tile the buffer");
    covered += s.numel;
  }
  if (covered != params.numel()) return Status::InvalidArgument("optimizer: decay spans do not cover the buffer");
  std::unique_ptr<Optimizer> opt;
  switch (cfg.kind()) {
    case config::OptimizerConfig::KIND_SGD:
      opt.reset(new SgdOptimizer(cfg, total_steps, backend, params, grads));
      break;
    case config::OptimizerConfig::KIND_ADAMW:
      opt.reset(new AdamWOptimizer(cfg, total_steps, backend, params, grads));
      break;
  }
  if (!opt) return Status::InvalidArgument("optimizer.kind: unknown value " + std::to_string(cfg.kind()));
  opt->spans_ = std::move(spans);
  return opt;
}

float Optimizer::step(int64_t step) {
  const float lr = schedule_lr(cfg_, step, total_steps_);
  for (const DecaySpan& s : spans_)
    if (s.numel > 0) apply(lr, s.decay ? cfg_.weight_decay() : 0.0f, s.offset, s.numel);
  ++steps_taken_;
  return lr;
}

double grad_global_norm(Backend& backend, const Tensor& grads) {
  return std::sqrt(backend.sum_squares(grads.f32(), grads.numel()));
}

void clip_grads_to_norm(Backend& backend, Tensor& grads, double norm, float max_norm) {
  if (max_norm > 0 && norm > max_norm) {
    // Same as PyTorch: coefficient from the fp32 norm, applied as one fp32 multiply.
    const float coef = max_norm / (static_cast<float>(norm) + 1e-6f);
    backend.scale(grads.f32(), grads.numel(), coef);
  }
}

double clip_grad_norm(Backend& backend, Tensor& grads, float max_norm) {
  const double norm = grad_global_norm(backend, grads);
  clip_grads_to_norm(backend, grads, norm, max_norm);
  return norm;
}

}  // namespace shardtrain

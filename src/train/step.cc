// Trainer, part 3: one optimizer step on one batch.
#include "train/setup.h"
#include "train/trainer.h"

namespace shardtrain {

StatusOr<Trainer::StepResult> Trainer::train_step(const Batch& batch, int64_t step, bool want_norm) {
  ForwardContext ctx;
  ctx.training = true;
  ctx.seed = cfg_.train().seed();
  ctx.step = step;
  ctx.sample_offset = batch.sample_offset;
  ctx.global_batch = batch.global_size;
  ctx.grad_scale = 1.0f / static_cast<float>(cfg_.data().global_batch());
  StepResult sr;
  // Buckets of gradients are summed over ranks as backward produces them.
  sr.batch = model_->forward_backward(ctx, batch_inputs(*model_, batch), batch.size,
                                      [this](int first) { reducer_->ready_from(first); });
  RETURN_IF_ERROR(reducer_->finish());
  const float max_norm = cfg_.optimizer().clip_grad_norm();
  if (max_norm > 0 || want_norm) sr.grad_norm = clip_grad_norm(*backend_, model_->flat_grads(), max_norm);
  sr.lr = opt_->step(step);
  return sr;
}

}  // namespace shardtrain

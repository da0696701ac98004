// Trainer, part 3: one optimizer step on one batch.
#include "optim/schedule.h"
#include "train/setup.h"
#include "train/trainer.h"

namespace shardtrain {

StatusOr<Trainer::StepResult> Trainer::train_step(const Batch& batch, int64_t step, bool want_norm, StepVote* vote) {
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

  // No NaN or inf may reach the parameters (train.on_nonfinite): the summed gradients are
  // checked every step, through their norm when it is computed anyway (clipping, a log
  // line), else by the cheaper all_finite pass, which falls back to the norm only to name
  // the bad value.
  Tensor& grads = model_->flat_grads();
  const float max_norm = cfg_.optimizer().clip_grad_norm();
  if (max_norm > 0 || want_norm || !backend_->all_finite(grads.f32(), grads.numel()))
    sr.grad_norm = grad_global_norm(*backend_, grads);
  // This rank's stop request joins the same all-reduce, read as late as possible so that a
  // signal that arrived during this step stops the job after it.
  if (const int signo = opts_.stop_signals ? opts_.stop_signals->received() : 0)
    step_vote_add_stop(vote, signo, opts_.stop_signals->seconds_since_received(), topo_.rank, topo_.world_size);
  ASSIGN_OR_RETURN(sr.check, agree_step_check(comm_, sr.batch.loss_sum, sr.grad_norm, vote));
  if (!sr.check.finite()) {  // no update: parameters and optimizer state stay as they were
    sr.lr = schedule_lr(cfg_.optimizer(), step, total_steps_);
    return sr;
  }
  clip_grads_to_norm(*backend_, grads, sr.grad_norm, max_norm);
  sr.lr = opt_->step(step);
  return sr;
}

}  // namespace shardtrain

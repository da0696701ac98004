#include "train/trainer.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "comm/agree.h"
#include "comm/fault_injection.h"
#include "comm/make_communicator.h"
#include "config/config.h"
#include "config/signal_list.h"
#include "core/log.h"
#include "train/evaluate.h"
#include "train/setup.h"

namespace shardtrain {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

Status make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Status::FailedPrecondition("cannot create directory " + path + ": " + ec.message());
  return Status::Ok();
}

// Writes `text` to `path` via a temporary file and rename, so a reader never sees half.
Status write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text;
    if (!f.flush()) {  // a full disk: say so, and leave nothing half-written behind
      const std::string why = std::strerror(errno);
      std::remove(tmp.c_str());
      return Status::Internal("cannot write " + tmp + ": " + why);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return Status::Internal("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
  return Status::Ok();
}

}  // namespace

Trainer::Trainer(const config::JobConfig& cfg, const TrainerOptions& opts, const Topology& topo,
                 MpiCommunicator& control)
    : cfg_(cfg), config_text_(config_to_text(cfg)), opts_(opts), topo_(topo), comm_(control) {}

StatusOr<std::unique_ptr<Trainer>> Trainer::create(const config::JobConfig& cfg, const TrainerOptions& opts,
                                                   const Topology& topo, MpiCommunicator& control) {
  std::unique_ptr<Trainer> t(new Trainer(cfg, opts, topo, control));
  RETURN_IF_ERROR(t->setup());
  return t;
}

Status Trainer::setup() {
  RETURN_IF_ERROR(fault_check_rank(cfg_.debug(), topo_.world_size));
  ASSIGN_OR_RETURN(backend_, backend_for_job(cfg_, topo_));
  ASSIGN_OR_RETURN(train_data_, open_train_split(cfg_, topo_));
  ASSIGN_OR_RETURN(test_data_, open_test_split(cfg_, topo_));
  total_steps_ = cfg_.train().has_steps() ? cfg_.train().steps()
                                          : cfg_.train().epochs() * train_data_->batches_per_epoch();

  ASSIGN_OR_RETURN(model_, build_model(cfg_, *train_data_, *test_data_, *backend_));
  ASSIGN_OR_RETURN(opt_, make_optimizer(cfg_, total_steps_, *model_));

  ckpt_ = std::make_unique<CheckpointManager>(opts_.run_dir + "/" + cfg_.checkpoint().dir(),
                                              cfg_.checkpoint().keep_last());
  return Status::Ok();
}

Status Trainer::save_checkpoint() {
  Status st;
  if (topo_.rank == 0)
    st = ckpt_->save(checkpoint_capture(*model_, *opt_, progress_, cfg_.train().seed(), topo_.world_size,
                                        config_text_));
  RETURN_IF_ERROR(agree_on_status(comm_, st));
  last_saved_step_ = progress_.step;
  if (topo_.rank == 0) log_info("saved checkpoint " + ckpt_->dir() + "/" + CheckpointManager::file_name(progress_.step));
  return Status::Ok();
}

Status Trainer::stop_for_signal(const StopRequest& req, Clock::time_point voted_at, bool* all_ranks) {
  const auto start = Clock::now();
  if (topo_.rank == 0) {
    const std::string lowest = std::to_string(req.lowest_rank), highest = std::to_string(req.highest_rank);
    const std::string where = lowest == highest ? "rank " + lowest : "ranks " + lowest + ".." + highest;
    log_info("stop: " + signal_name(req.signo) + " received (on " + where + "); every rank stops after step " +
             std::to_string(progress_.step) + " and saves it");
  }
  // The step's device work and collectives must be complete and clean before it is saved.
  RETURN_IF_ERROR(backend_->synchronize());
  RETURN_IF_ERROR(grad_comm_->health());
  *all_ranks = true;
  if (last_saved_step_ != progress_.step) RETURN_IF_ERROR(save_checkpoint());
  const double save_s = seconds_since(start);
  const double since_signal_s = req.age_s + seconds_since(voted_at);
  stopped_by_ = req.signo;
  if (topo_.rank != 0) return Status::Ok();
  char line[256];
  std::snprintf(line, sizeof line,
                "stop: %s at step %lld: checkpoint saved in %.2f s, %.2f s after the signal; exiting with code 75 "
                "(continue with --resume auto)",
                signal_name(req.signo).c_str(), (long long)progress_.step, save_s, since_signal_s);
  log_info(line);
  const double budget = cfg_.checkpoint().stop_budget_s();
  if (budget > 0 && since_signal_s > budget) {
    std::snprintf(line, sizeof line,
                  "stop took %.1f s after the signal, more than checkpoint.stop_budget_s = %g: give the job more "
                  "time after the signal (Slurm: --signal=USR1@T with a larger T, or KillWait for SIGTERM)",
                  since_signal_s, budget);
    log_warn(line);
  }
  return Status::Ok();
}

Status Trainer::run_eval(bool* all_ranks) {
  ASSIGN_OR_RETURN(EvalResult e, evaluate(*model_, *test_data_, comm_));
  EvalLogRecord r{progress_.step, e.loss, e.accuracy, e.samples};
  if (topo_.rank == 0) {
    std::printf("%s\n", eval_line(r).c_str());
    std::fflush(stdout);
  }
  Status st = agree_on_status(comm_, topo_.rank == 0 ? metrics_.write(r) : Status::Ok());
  if (!st.ok()) *all_ranks = true;
  return st;
}

Status Trainer::log_progress(double loss_sum, double correct, double samples, double predictions, double grad_norm,
                             float lr, bool* all_ranks) {
  double sums[4] = {loss_sum, correct, samples, predictions};
  RETURN_IF_ERROR(comm_.all_reduce(sums, 4, CommDType::kFloat64, ReduceOp::kSum));
  Status st;
  if (topo_.rank == 0) st = print_progress(sums, grad_norm, lr);
  st = agree_on_status(comm_, st);
  if (!st.ok()) *all_ranks = true;
  return st;
}

// Rank 0: the progress line and its metrics record. `sums`: loss, correct, samples and
// predictions of the steps applied since the last line, summed over ranks.
Status Trainer::print_progress(const double sums[4], double grad_norm, float lr) {
  // Time spent evaluating and checkpointing is not training time.
  const double dt = seconds_since(log_time_) - excluded_s_;
  excluded_s_ = 0;
  const int64_t steps = progress_.step - log_step_;
  TrainLogRecord r;
  r.step = progress_.step;
  r.total_steps = total_steps_;
  r.epoch = last_epoch_;  // of the batch just trained (progress_.data is the next one)
  // Skipped (non-finite) steps are not in the sums; if every step was, there is no loss.
  r.loss = sums[3] > 0 ? sums[0] / sums[3] : std::nan("");
  r.accuracy = sums[3] > 0 ? sums[1] / sums[3] : std::nan("");
  r.skipped_steps = skipped_total_;
  r.lr = lr;
  r.grad_norm = grad_norm;
  r.samples_per_s = dt > 0 ? sums[2] / dt : 0;
  if (flops_per_token_ > 0 && dt > 0) {
    r.tokens_per_s = sums[3] / dt;
    r.flops_per_s = r.tokens_per_s * flops_per_token_;
    const double peak = backend_->peak_flops(model_->compute_dtype()) * topo_.world_size;
    r.mfu = peak > 0 ? r.flops_per_s / peak : 0;
  }
  r.elapsed_s = seconds_since(start_time_);
  r.eta_s = steps > 0 ? dt / steps * (total_steps_ - progress_.step) : 0;
  std::printf("%s\n", progress_line(r).c_str());
  std::fflush(stdout);
  log_time_ = Clock::now();
  log_step_ = progress_.step;
  return metrics_.write(r);
}

Status Trainer::handle_nonfinite(int64_t step, const StepCheck& check) {
  const auto& tc = cfg_.train();
  ++skipped_total_;
  ++skipped_in_a_row_;
  const std::string what = "step " + std::to_string(step + 1) + ": " + check.describe();
  std::string why;
  if (tc.on_nonfinite() == config::TrainConfig::NONFINITE_STOP)
    why = "train.on_nonfinite is stop";
  else if (skipped_total_ > tc.max_skipped_steps())
    why = std::to_string(skipped_total_) + " steps skipped, more than train.max_skipped_steps = " +
          std::to_string(tc.max_skipped_steps());
  else if (skipped_in_a_row_ > tc.max_consecutive_skipped_steps())
    why = std::to_string(skipped_in_a_row_) + " steps in a row skipped, more than "
          "train.max_consecutive_skipped_steps = " + std::to_string(tc.max_consecutive_skipped_steps());
  if (why.empty()) {
    if (topo_.rank == 0)
      log_warn(what + "; skipped its update (" + std::to_string(skipped_total_) + " skipped so far)");
    return Status::Ok();
  }
  const std::string kept = last_saved_step_ >= 0 ? "the newest checkpoint (step " + std::to_string(last_saved_step_) +
                                                       ") holds the last finite state"
                                                 : "no checkpoint was written";
  return Status::NonFinite(what + " before the optimizer update; stopping (" + why + "); " + kept);
}

Status Trainer::run(bool* all_ranks) {
  *all_ranks = true;  // until the parameter broadcast, failures are agreed
  // Run directory and effective config, on rank 0 only.
  Status st;
  if (topo_.rank == 0) {
    st = make_dirs(opts_.run_dir);
    if (st.ok()) st = write_file_atomic(opts_.run_dir + "/config.pbtxt", config_text_);
    if (st.ok()) st = metrics_.open(opts_.run_dir + "/metrics.jsonl");
  }
  RETURN_IF_ERROR(agree_on_status(comm_, st));

  // Every replica starts from rank 0's parameters (identical by construction; this makes
  // it so even if a future init path were not). A device collective can fail on one rank
  // alone, so from here failures are not agreed.
  *all_ranks = false;
  Tensor& params = model_->flat_params();
  RETURN_IF_ERROR(grad_comm_->broadcast(params.f32(), params.numel(), CommDType::kFloat32, 0));

  if (topo_.rank == 0) {
    std::printf("shardtrain: %s | %d rank(s) | %s | %lld steps, global batch %lld (%lld per rank)\n%s\n",
                cfg_.name().c_str(), topo_.world_size, backend_->name().c_str(), (long long)total_steps_,
                (long long)cfg_.data().global_batch(), (long long)(cfg_.data().global_batch() / topo_.world_size),
                model_->summary().c_str());
    std::fflush(stdout);
  }

  const auto& tc = cfg_.train();
  double loss_sum = 0, correct = 0, samples = 0, predictions = 0;  // of applied steps since the last log line
  start_time_ = log_time_ = Clock::now();
  flops_per_token_ = model_->flops_per_token();
  log_step_ = progress_.step;

  while (progress_.step < total_steps_) {
    const int64_t step = progress_.step;
    // The watchdog names collectives by the step being trained, numbered as progress lines
    // number it (the checkpoint written after it carries the same number).
    comm_.set_step(step + 1);
    fault_inject_at_step(cfg_.debug(), topo_.rank, step + 1, comm_.watchdog());
    ASSIGN_OR_RETURN(Batch batch, train_data_->next());
    const bool log_now = (step + 1) % tc.log_every() == 0 || step + 1 == total_steps_;
    // The vote travels in the step's non-finite check (train/step_vote.h, step_check.h).
    StepVote vote;
    ASSIGN_OR_RETURN(StepResult sr, train_step(batch, step, log_now, &vote));
    const auto voted_at = Clock::now();
    if (!sr.check.finite()) {
      Status s = handle_nonfinite(step, sr.check);  // the check was agreed: so is this
      if (!s.ok()) return *all_ranks = true, s;
    } else {
      skipped_in_a_row_ = 0;
    }
    const BatchResult& r = sr.batch;
    const double grad_norm = sr.grad_norm;
    const float lr = sr.lr;
    const bool eval_now = tc.eval_every() > 0 && (step + 1) % tc.eval_every() == 0 && step + 1 != total_steps_;
    const int64_t every = cfg_.checkpoint().every();
    const bool save_now = every > 0 && (step + 1) % every == 0 && step + 1 != total_steps_;
    if (log_now || eval_now || save_now || step + 1 == total_steps_) {
      // Before anything of this step is logged, evaluated or saved: wait for it and make
      // sure its collectives finished cleanly (an NCCL wait() does not block, so a failure
      // may only be recorded now). Other steps are checked by the next step's collectives.
      RETURN_IF_ERROR(backend_->synchronize());
      RETURN_IF_ERROR(grad_comm_->health());
    } else {
      RETURN_IF_ERROR(backend_->status());  // a device fault seen so far (no wait)
    }

    progress_.step = step + 1;
    progress_.samples_seen += batch.global_size;
    progress_.data = train_data_->position();
    last_epoch_ = batch.epoch;
    if (sr.check.finite()) {
      loss_sum += r.loss_sum;
      correct += static_cast<double>(r.correct);
      samples += static_cast<double>(r.samples);
      predictions += static_cast<double>(r.predictions);
    }

    if (log_now) {
      RETURN_IF_ERROR(log_progress(loss_sum, correct, samples, predictions, grad_norm, lr, all_ranks));
      loss_sum = correct = samples = predictions = 0;
    }
    const auto paused = Clock::now();
    if (eval_now) RETURN_IF_ERROR(run_eval(all_ranks));
    if (save_now) {
      Status s = save_checkpoint();
      if (!s.ok()) return *all_ranks = true, s;
    }
    if (eval_now || save_now) excluded_s_ += seconds_since(paused);
    // A stop on the last step is just the normal end (final save and evaluation, exit 0).
    if (const StopRequest req = step_vote_stop(vote, topo_.world_size); req.signo != 0 && progress_.step < total_steps_)
      return stop_for_signal(req, voted_at, all_ranks);
  }

  *all_ranks = true;
  if (last_saved_step_ != progress_.step) RETURN_IF_ERROR(save_checkpoint());
  *all_ranks = false;
  RETURN_IF_ERROR(run_eval(all_ranks));
  if (topo_.rank == 0)
    std::printf("done: %lld steps in %s\n", (long long)progress_.step, format_duration(seconds_since(start_time_)).c_str());
  return Status::Ok();
}

}  // namespace shardtrain

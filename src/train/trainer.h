// Trainer: data-parallel training of one model replica per rank.
//
// Each step: every rank reads its slice of the global batch, runs forward/backward with
// gradients scaled by 1/global_batch, the flat gradient buffer is summed over ranks in
// buckets issued while backward runs (comm/grad_bucketer.h), optionally clipped by global
// norm, and every rank takes the same optimizer step, so replicas stay identical without
// ever broadcasting parameters again.
//
// Two communicators: `control` (MPI over host memory) for agreement, metrics and
// evaluation sums; the device communicator (comm/make_communicator.h: MPI for CPU ranks,
// NCCL or host-staged MPI for GPU ranks) for parameters and gradients.
//
// Determinism: init, shuffling and dropout are counter-based from the seed, the data
// position and optimizer step are checkpointed, and reductions have fixed orders — so a
// run resumed from step N at the same world size is bitwise identical to one that never
// stopped.
//
// The implementation is split by idea: trainer.cc (setup and the loop), resume.cc (where
// a run starts), step.cc (one step).
//
// Usage (every rank):
//   create()  -> local errors only; the caller agrees on them across ranks;
//   restore() -> collective, after that agreement: connects the device communicator,
//                rank 0 locks the run dir (one job per run dir, held until the Trainer
//                is destroyed) and picks the checkpoint to start from (or none), every
//                rank loads it, and ranks check they agree on the position; the
//                returned Status is the same on every rank;
//   run()     -> collective. On failure `*all_ranks` says whether every rank returns
//                the same error (then each may exit cleanly); otherwise the failure is
//                this rank's alone and the caller must abort the job. OK with
//                stopped_by() != 0: a stop signal arrived (train.stop_signals, SIGINT),
//                every rank stopped after the same step and a checkpoint of it is saved.
//
// Stop signals are caught by the caller (train/stop_signals.h, TrainerOptions) and acted
// on at step boundaries, where the ranks agree on them in the step vote (train/step_vote.h).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "checkpoint/manager.h"
#include "checkpoint/run_dir_lock.h"
#include "comm/communicator.h"
#include "comm/grad_bucketer.h"
#include "comm/mpi/mpi_communicator.h"
#include "comm/mpi/topology.h"
#include "config/shardtrain.pb.h"
#include "data/loader.h"
#include "model/model.h"
#include "optim/optimizer.h"
#include "train/metrics.h"
#include "train/step_vote.h"
#include "train/stop_signals.h"
#include "train/step_check.h"
#include "train/train_state.h"

namespace shardtrain {

struct TrainerOptions {
  std::string run_dir;
  std::string resume;  // "" (fresh run), "auto" (newest valid checkpoint, else fresh) or a path
  // Not owned; must outlive run(). Null: no signals are watched (the vote still runs).
  const StopSignals* stop_signals = nullptr;
};

class Trainer {
 public:
  static StatusOr<std::unique_ptr<Trainer>> create(const config::JobConfig& cfg, const TrainerOptions& opts,
                                                   const Topology& topo, MpiCommunicator& control);
  Status restore();
  Status run(bool* all_ranks);
  // After run() returned OK: the stop signal that ended it early (0: it ran to the end).
  int stopped_by() const { return stopped_by_; }

 private:
  Trainer(const config::JobConfig& cfg, const TrainerOptions& opts, const Topology& topo, MpiCommunicator& control);
  Status setup();
  StatusOr<std::string> resolve_resume_path();  // rank 0 only
  void warn_on_changed_data_config(const std::string& path, const CheckpointData& ckpt) const;
  Status save_checkpoint();  // collective: rank 0 writes, all agree on the outcome
  // Collective, at a step boundary, after the vote agreed on `req` (issued at `voted_at`):
  // saves this step (unless already saved), logs and sets stopped_by_. *all_ranks as for run().
  Status stop_for_signal(const StopRequest& req, std::chrono::steady_clock::time_point voted_at, bool* all_ranks);
  // Both collective. Rank 0 writes a metrics line and every rank learns whether that
  // worked, so a full disk ends the job with one line and exit 1 on every rank: for such
  // an agreed failure *all_ranks is set to true. Other failures (evaluation, reduction)
  // are this rank's alone and leave *all_ranks as it was.
  Status run_eval(bool* all_ranks);
  Status log_progress(double loss_sum, double correct, double samples, double predictions, double grad_norm,
                      float lr, bool* all_ranks);
  Status print_progress(const double sums[4], double grad_norm, float lr);  // rank 0
  // train.on_nonfinite for a step that train_step did not apply: OK to go on (skipped and
  // logged), or NonFinite, the same on every rank (the check was agreed).
  Status handle_nonfinite(int64_t step, const StepCheck& check);

  // step.cc: forward, backward with gradients reduced over ranks as they are produced,
  // the agreed non-finite check, clipping and the optimizer update for the step with
  // 0-based index `step`. When !check.finite() nothing was updated.
  struct StepResult {
    BatchResult batch;
    double grad_norm = 0;  // before clipping; computed when clipping, want_norm or not finite
    float lr = 0;
    StepCheck check;
  };
  // *vote: this rank's part of the step vote in, the agreed vote out (same all-reduce as
  // the non-finite check).
  StatusOr<StepResult> train_step(const Batch& batch, int64_t step, bool want_norm, StepVote* vote);

  config::JobConfig cfg_;
  std::string config_text_;
  TrainerOptions opts_;
  Topology topo_;
  MpiCommunicator& comm_;  // control: host buffers

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<ShardedLoader> train_data_, test_data_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Optimizer> opt_;
  std::unique_ptr<CheckpointManager> ckpt_;
  std::unique_ptr<RunDirLock> run_lock_;  // rank 0, from restore() until destruction
  std::unique_ptr<Communicator> grad_comm_;  // device buffers (made in restore(): collective)
  std::unique_ptr<GradReducer> reducer_;
  MetricsLog metrics_;
  int stopped_by_ = 0;

  int64_t total_steps_ = 0;
  std::optional<CheckpointData> root_ckpt_;  // rank 0: the checkpoint resolve_resume_path() read
  TrainProgress progress_;
  int64_t last_saved_step_ = -1;
  std::chrono::steady_clock::time_point start_time_, log_time_;
  int64_t log_step_ = 0;  // step at log_time_
  int64_t last_epoch_ = 0;  // epoch of the last batch trained
  double excluded_s_ = 0;   // evaluation and checkpoint time since log_time_
  double flops_per_token_ = 0;
  int64_t skipped_total_ = 0, skipped_in_a_row_ = 0;  // non-finite steps skipped by this process
};

}  // namespace shardtrain

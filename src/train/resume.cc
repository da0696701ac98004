// Trainer, part 2: where a run starts. Rank 0 picks the checkpoint (or none), every rank
// loads the same one, and the ranks check they stand at the same position.
#include <algorithm>
#include <filesystem>

#include "comm/agree.h"
#include "comm/make_communicator.h"
#include "config/config.h"
#include "core/log.h"
#include "train/trainer.h"

namespace shardtrain {

// Rank 0 alone decides where training starts: it is the rank that writes checkpoints, and
// one decision broadcast to all is what keeps ranks from starting at different steps when
// their views of the run directory differ (node-local disks, stale NFS listings).
// Returns "" for a fresh start. Nothing on disk changes here.
StatusOr<std::string> Trainer::resolve_resume_path() {
  const std::string& dir = ckpt_->dir();
  const std::vector<std::string> existing = ckpt_->list();
  if (opts_.resume.empty()) {
    if (!existing.empty())
      return Status::FailedPrecondition(dir + " already holds checkpoints (newest " + existing.front() +
                                        "): pass --resume auto to continue that run, or choose another --run-dir");
    return std::string();
  }
  if (opts_.resume == "auto") {
    CheckpointData data;
    auto found = ckpt_->find_latest_valid(&data);  // skips (and warns about) damaged ones
    if (!found.ok()) {
      if (found.status().code() == StatusCode::kNotFound) return std::string();
      return found.status();  // checkpoints exist but none reads: never silently start over
    }
    root_ckpt_ = std::move(data);
    return found.value();
  }
  // An explicit checkpoint into a run dir that already has checkpoints would interleave two
  // runs' files (and pruning would delete the other run's). Only continuing from that
  // dir's own newest checkpoint is allowed.
  if (!existing.empty()) {
    std::error_code ec;
    const auto want = std::filesystem::weakly_canonical(opts_.resume, ec);
    const auto newest = std::filesystem::weakly_canonical(existing.front(), ec);
    if (want != newest)
      return Status::FailedPrecondition(
          "--resume " + opts_.resume + ": " + dir + " already holds checkpoints (newest " + existing.front() +
          "); resuming another checkpoint there would mix two runs: use a new --run-dir, or --resume auto");
  }
  return opts_.resume;
}

void Trainer::warn_on_changed_data_config(const std::string& path, const CheckpointData& ckpt) const {
  if (ckpt.world_size != topo_.world_size)
    log_warn(path + " was written by " + std::to_string(ckpt.world_size) + " ranks, resuming on " +
             std::to_string(topo_.world_size) + ": state is replicated so this works, but the run is only "
             "bitwise reproducible at the same world size");
  if (ckpt.seed != cfg_.train().seed())
    log_warn(path + ": train.seed differs from the checkpoint's; shuffling and dropout change");
  auto old = parse_config_text(ckpt.config_text, path + ":/meta/config");
  if (!old.ok()) return;
  const auto &was = old->data(), &now = cfg_.data();
  if (was.global_batch() != now.global_batch() || was.shuffle() != now.shuffle() ||
      was.train_split() != now.train_split())
    log_warn(path + ": data.global_batch, data.shuffle or data.train_split changed since this checkpoint; "
             "its data position (epoch " + std::to_string(ckpt.data_epoch) + ", batch " +
             std::to_string(ckpt.data_batch) + ") now means other samples");
}

Status Trainer::restore() {
  // The device communicator is made here rather than in setup(): making it is collective,
  // and setup() may fail on one rank alone. It shares control's watchdog, configured first.
  RETURN_IF_ERROR(configure_watchdog(comm_.watchdog(), cfg_.comm(), comm_.mpi_comm()));
  ASSIGN_OR_RETURN(grad_comm_, make_device_communicator(cfg_.comm(), *backend_, comm_, topo_));
  std::vector<GradTensor> tensors;
  for (const ParamInfo& p : model_->params()) tensors.push_back({p.offset, shape_numel(p.shape)});
  const CommDType wire =
      cfg_.comm().grad_dtype() == config::CommConfig::GRAD_DTYPE_BF16 ? CommDType::kBFloat16 : CommDType::kFloat32;
  ASSIGN_OR_RETURN(reducer_, GradReducer::create(*grad_comm_, *backend_, model_->flat_grads().f32(), std::move(tensors),
                                                 static_cast<int64_t>(cfg_.comm().bucket_mb() * (1 << 20)), wire));

  const bool root = topo_.rank == 0;
  std::string path;
  Status st;
  if (root) {
    // Lock before looking: another job's checkpoints may change under us otherwise, and
    // a job that cannot lock must leave the run dir exactly as it found it.
    auto lock = RunDirLock::acquire(opts_.run_dir);
    st = lock.status();
    if (st.ok()) {
      run_lock_ = std::move(lock).value();
      auto resolved = resolve_resume_path();
      if (resolved.ok()) path = resolved.value();
      st = resolved.status();
    }
  }
  RETURN_IF_ERROR(agree_on_status(comm_, st));
  RETURN_IF_ERROR(broadcast_string(comm_, &path, 0));

  // Every rank loads the same file (or initialises); rank 0 reuses what it already read.
  st = Status::Ok();
  if (path.empty()) {
    model_->init_params(cfg_.train().seed());
  } else {
    auto loaded = [&]() -> Status {
      CheckpointData ckpt;
      if (root && root_ckpt_) {
        ckpt = std::move(*root_ckpt_);
      } else {
        ASSIGN_OR_RETURN(ckpt, checkpoint_read(path));
      }
      root_ckpt_.reset();
      ASSIGN_OR_RETURN(progress_, checkpoint_restore(path, ckpt, *model_, opt_.get()));
      if (progress_.step > total_steps_)
        return Status::InvalidArgument(path + " is at step " + std::to_string(progress_.step) + ", past the run's " +
                                       std::to_string(total_steps_) + " steps (train.steps)");
      RETURN_IF_ERROR(train_data_->seek(progress_.data).WithContext(path + ": data position"));
      if (root) {
        log_info("resuming from " + path + " at step " + std::to_string(progress_.step));
        warn_on_changed_data_config(path, ckpt);
      }
      return Status::Ok();
    };
    st = loaded();
  }
  RETURN_IF_ERROR(agree_on_status(comm_, st));
  last_saved_step_ = path.empty() ? -1 : progress_.step;

  // Every rank must now stand at rank 0's position; a mismatch means ranks read different
  // files under the same name.
  int64_t mine[4] = {progress_.step, opt_->steps_taken(), progress_.data.epoch, progress_.data.batch};
  int64_t root_pos[4] = {mine[0], mine[1], mine[2], mine[3]};
  RETURN_IF_ERROR(comm_.broadcast(root_pos, 4, CommDType::kInt64, 0));
  st = Status::Ok();
  if (!std::equal(mine, mine + 4, root_pos))
    st = Status::FailedPrecondition("rank " + std::to_string(topo_.rank) + " loaded " + path + " at step " +
                                    std::to_string(mine[0]) + " but rank 0 at step " + std::to_string(root_pos[0]) +
                                    ": ranks see different files (is the run dir on a shared file system?)");
  return agree_on_status(comm_, st);
}

}  // namespace shardtrain

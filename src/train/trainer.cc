#include "train/trainer.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "comm/agree.h"
#include "comm/make_communicator.h"
#include "config/config.h"
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
    if (!f.flush()) return Status::Internal("cannot write " + tmp);
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
  const auto& d = cfg_.data();
  ASSIGN_OR_RETURN(backend_, backend_for_job(cfg_, topo_));
  ASSIGN_OR_RETURN(train_data_, open_train_split(cfg_, topo_));
  ASSIGN_OR_RETURN(test_data_, open_test_split(cfg_, topo_));
  total_steps_ = cfg_.train().has_steps() ? cfg_.train().steps()
                                          : cfg_.train().epochs() * train_data_->batches_per_epoch();

  if (test_data_->sample_shape() != train_data_->sample_shape())
    return Status::InvalidArgument(d.path() + ": samples of /" + d.test_split() + "/" + d.images_dataset() + " are " +
                                   shape_str(test_data_->sample_shape()) + " but those of /" + d.train_split() + "/" +
                                   d.images_dataset() + " are " + shape_str(train_data_->sample_shape()));
  ASSIGN_OR_RETURN(model_, Model::build(cfg_.model(), train_data_->sample_shape(), d.num_classes(), *backend_));
  ASSIGN_OR_RETURN(opt_, Optimizer::create(cfg_.optimizer(), total_steps_, *backend_, model_->flat_params(),
                                           model_->flat_grads()));

  ckpt_ = std::make_unique<CheckpointManager>(opts_.run_dir + "/" + cfg_.checkpoint().dir(),
                                              cfg_.checkpoint().keep_last());
  return Status::Ok();
}

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
  // and setup() may fail on one rank alone.
  ASSIGN_OR_RETURN(grad_comm_, make_device_communicator(cfg_.comm(), *backend_, comm_, topo_));
  std::vector<GradTensor> tensors;
  for (const ParamInfo& p : model_->params()) tensors.push_back({p.offset, shape_numel(p.shape)});
  reducer_ = std::make_unique<GradReducer>(*grad_comm_, *backend_, model_->flat_grads().f32(), std::move(tensors),
                                           static_cast<int64_t>(cfg_.comm().bucket_mb() * (1 << 20)));

  const bool root = topo_.rank == 0;
  std::string path;
  Status st;
  if (root) {
    auto resolved = resolve_resume_path();
    if (resolved.ok()) path = resolved.value();
    st = resolved.status();
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

Status Trainer::run_eval() {
  ASSIGN_OR_RETURN(EvalResult e, evaluate(*model_, *test_data_, comm_));
  if (topo_.rank == 0) {
    EvalLogRecord r{progress_.step, e.loss, e.accuracy, e.samples};
    std::printf("%s\n", eval_line(r).c_str());
    std::fflush(stdout);
    RETURN_IF_ERROR(metrics_.write(r));
  }
  return Status::Ok();
}

Status Trainer::log_progress(double loss_sum, double correct, double samples, double grad_norm, float lr) {
  double sums[3] = {loss_sum, correct, samples};
  RETURN_IF_ERROR(comm_.all_reduce(sums, 3, CommDType::kFloat64, ReduceOp::kSum));
  if (topo_.rank != 0) return Status::Ok();
  const double dt = seconds_since(log_time_);
  const int64_t steps = progress_.step - log_step_;
  TrainLogRecord r;
  r.step = progress_.step;
  r.total_steps = total_steps_;
  r.epoch = last_epoch_;  // of the batch just trained (progress_.data is the next one)
  r.loss = sums[2] > 0 ? sums[0] / sums[2] : 0;
  r.accuracy = sums[2] > 0 ? sums[1] / sums[2] : 0;
  r.lr = lr;
  r.grad_norm = grad_norm;
  r.samples_per_s = dt > 0 ? sums[2] / dt : 0;
  r.elapsed_s = seconds_since(start_time_);
  r.eta_s = steps > 0 ? dt / steps * (total_steps_ - progress_.step) : 0;
  std::printf("%s\n", progress_line(r).c_str());
  std::fflush(stdout);
  log_time_ = Clock::now();
  log_step_ = progress_.step;
  return metrics_.write(r);
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
  const float grad_scale = 1.0f / static_cast<float>(cfg_.data().global_batch());
  Tensor& grads = model_->flat_grads();
  double loss_sum = 0, correct = 0, samples = 0;
  start_time_ = log_time_ = Clock::now();
  log_step_ = progress_.step;

  while (progress_.step < total_steps_) {
    const int64_t step = progress_.step;
    ASSIGN_OR_RETURN(Batch batch, train_data_->next());
    ForwardContext ctx;
    ctx.training = true;
    ctx.seed = tc.seed();
    ctx.step = step;
    ctx.sample_offset = batch.sample_offset;
    ctx.global_batch = batch.global_size;
    // Buckets of gradients are summed over ranks as backward produces them.
    BatchResult r = model_->forward_backward(ctx, batch.images.data(), batch.labels.data(), batch.size, grad_scale,
                                             [this](int first) { reducer_->ready_from(first); });
    RETURN_IF_ERROR(reducer_->finish());

    const bool log_now = (step + 1) % tc.log_every() == 0 || step + 1 == total_steps_;
    double grad_norm = 0;
    if (cfg_.optimizer().clip_grad_norm() > 0 || log_now)
      grad_norm = clip_grad_norm(*backend_, grads, cfg_.optimizer().clip_grad_norm());
    const float lr = opt_->step(step);
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
    loss_sum += r.loss_sum;
    correct += static_cast<double>(r.correct);
    samples += static_cast<double>(r.samples);

    if (log_now) {
      RETURN_IF_ERROR(log_progress(loss_sum, correct, samples, grad_norm, lr));
      loss_sum = correct = samples = 0;
    }
    if (eval_now) RETURN_IF_ERROR(run_eval());
    if (save_now) {
      Status s = save_checkpoint();
      if (!s.ok()) return *all_ranks = true, s;
    }
  }

  *all_ranks = true;
  if (last_saved_step_ != progress_.step) RETURN_IF_ERROR(save_checkpoint());
  *all_ranks = false;
  RETURN_IF_ERROR(run_eval());
  if (topo_.rank == 0)
    std::printf("done: %lld steps in %s\n", (long long)progress_.step, format_duration(seconds_since(start_time_)).c_str());
  return Status::Ok();
}

}  // namespace shardtrain

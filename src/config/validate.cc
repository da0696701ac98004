#include "config/validate.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <type_traits>

#include "config/signal_list.h"

namespace shardtrain {
namespace {

// Integers print exactly; floats as the shortest "%g" form (0.01, -1, nan).
template <typename T>
std::string fmt(T v) {
  if constexpr (std::is_integral_v<T>) {
    return std::to_string(v);
  } else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
    return buf;
  }
}

template <typename T>
Status bad(const std::string& field, const std::string& rule, T got) {
  return Status::InvalidArgument(field + " must be " + rule + " (got " + fmt(got) + ")");
}

// Each check is written as "!(value in range)" so NaN fails it; infinities are rejected
// too because no field here means anything at infinity.
template <typename T>
Status check_positive(const std::string& field, T v) {
  if (!(v > 0) || std::isinf(static_cast<double>(v))) return bad(field, "> 0", v);
  return Status::Ok();
}
template <typename T>
Status check_non_negative(const std::string& field, T v) {
  if (!(v >= 0) || std::isinf(static_cast<double>(v))) return bad(field, ">= 0", v);
  return Status::Ok();
}
Status check_unit_interval(const std::string& field, float v) {  // [0, 1)
  if (!(v >= 0 && v < 1)) return bad(field, "in [0, 1)", v);
  return Status::Ok();
}
Status check_non_empty(const std::string& field, const std::string& v) {
  if (v.empty()) return Status::InvalidArgument(field + " must not be empty");
  return Status::Ok();
}

Status validate_model(const config::ModelConfig& m) {
  if (m.layer_size() < 1) return Status::InvalidArgument("model.layer: the model must have at least 1 layer");
  std::map<std::string, int> first_index;  // explicit name -> first layer using it
  for (int i = 0; i < m.layer_size(); ++i) {
    const config::LayerConfig& layer = m.layer(i);
    const std::string path = "model.layer[" + std::to_string(i) + "]";
    // Only explicit names: empty ones get "<type><index>" defaults from the model builder,
    // which owns that rule.
    if (!layer.name().empty()) {
      auto [it, inserted] = first_index.emplace(layer.name(), i);
      if (!inserted)
        return Status::InvalidArgument(path + ".name duplicates \"" + layer.name() + "\" (model.layer[" +
                                       std::to_string(it->second) + "].name)");
    }
    if (layer.has_dropout()) RETURN_IF_ERROR(check_unit_interval(path + ".dropout.p", layer.dropout().p()));
  }
  return Status::Ok();
}

Status validate_data(const config::DataConfig& d) {
  RETURN_IF_ERROR(check_non_empty("data.path", d.path()));
  RETURN_IF_ERROR(check_non_empty("data.train_split", d.train_split()));
  RETURN_IF_ERROR(check_non_empty("data.test_split", d.test_split()));
  RETURN_IF_ERROR(check_non_empty("data.images_dataset", d.images_dataset()));
  RETURN_IF_ERROR(check_non_empty("data.labels_dataset", d.labels_dataset()));
  RETURN_IF_ERROR(check_positive("data.global_batch", d.global_batch()));
  RETURN_IF_ERROR(check_positive("data.eval_batch", d.eval_batch()));
  if (!std::isfinite(d.mean())) return bad("data.mean", "finite", d.mean());
  RETURN_IF_ERROR(check_positive("data.std", d.std()));
  if (!(d.num_classes() >= 2)) return bad("data.num_classes", ">= 2", d.num_classes());
  if (d.kind() == config::DataConfig::KIND_TOKENS) {
    RETURN_IF_ERROR(check_non_empty("data.tokens_dataset", d.tokens_dataset()));
    RETURN_IF_ERROR(check_positive("data.seq_len", d.seq_len()));
  }
  return Status::Ok();
}

// The loader lets through every token id below data.num_classes, so each token table needs
// that many rows: a smaller one would be read out of bounds, or (rounded up to pad_to rows)
// would quietly train its padding rows.
Status validate_vocabulary(const config::JobConfig& cfg) {
  if (cfg.data().kind() != config::DataConfig::KIND_TOKENS) return Status::Ok();
  const int64_t vocab = cfg.data().num_classes();
  for (int i = 0; i < cfg.model().layer_size(); ++i) {
    const config::LayerConfig& layer = cfg.model().layer(i);
    if (!layer.has_embedding() || layer.embedding().num_embeddings() >= vocab) continue;
    const std::string name = layer.name().empty() ? "" : " (" + layer.name() + ")";
    return Status::InvalidArgument("model.layer[" + std::to_string(i) + "]" + name + ": embedding.num_embeddings (" +
                                   fmt(layer.embedding().num_embeddings()) + ") is smaller than the vocabulary, " +
                                   "data.num_classes (" + fmt(vocab) + "): token ids up to " + fmt(vocab - 1) +
                                   " need a row each");
  }
  return Status::Ok();
}

Status validate_optimizer(const config::OptimizerConfig& o) {
  RETURN_IF_ERROR(check_positive("optimizer.lr", o.lr()));
  RETURN_IF_ERROR(check_non_negative("optimizer.weight_decay", o.weight_decay()));
  RETURN_IF_ERROR(check_unit_interval("optimizer.momentum", o.momentum()));
  RETURN_IF_ERROR(check_unit_interval("optimizer.beta1", o.beta1()));
  RETURN_IF_ERROR(check_unit_interval("optimizer.beta2", o.beta2()));
  RETURN_IF_ERROR(check_positive("optimizer.eps", o.eps()));
  RETURN_IF_ERROR(check_non_negative("optimizer.clip_grad_norm", o.clip_grad_norm()));
  const config::ScheduleConfig& s = o.schedule();
  RETURN_IF_ERROR(check_non_negative("optimizer.schedule.warmup_steps", s.warmup_steps()));
  if (!(s.min_lr() >= 0 && s.min_lr() <= o.lr()))
    return bad("optimizer.schedule.min_lr", "in [0, optimizer.lr = " + fmt(o.lr()) + "]", s.min_lr());
  return Status::Ok();
}

Status validate_train(const config::TrainConfig& t) {
  if (t.has_steps() == t.has_epochs()) return Status::InvalidArgument("train: set exactly one of steps or epochs");
  if (t.has_steps()) RETURN_IF_ERROR(check_positive("train.steps", t.steps()));
  if (t.has_epochs()) RETURN_IF_ERROR(check_positive("train.epochs", t.epochs()));
  RETURN_IF_ERROR(check_non_negative("train.eval_every", t.eval_every()));
  RETURN_IF_ERROR(check_positive("train.log_every", t.log_every()));
  RETURN_IF_ERROR(check_non_negative("train.threads", t.threads()));
  RETURN_IF_ERROR(parse_signal_list("train.stop_signals", t.stop_signals()).status());
  RETURN_IF_ERROR(check_non_negative("train.max_skipped_steps", t.max_skipped_steps()));
  RETURN_IF_ERROR(check_non_negative("train.max_consecutive_skipped_steps", t.max_consecutive_skipped_steps()));
  return Status::Ok();
}

Status validate_checkpoint(const config::CheckpointConfig& c) {
  RETURN_IF_ERROR(check_non_empty("checkpoint.dir", c.dir()));
  RETURN_IF_ERROR(check_non_negative("checkpoint.every", c.every()));
  RETURN_IF_ERROR(check_non_negative("checkpoint.keep_last", c.keep_last()));
  RETURN_IF_ERROR(check_non_negative("checkpoint.stop_budget_s", c.stop_budget_s()));
  return Status::Ok();
}

Status validate_comm(const config::JobConfig& cfg) {
  const config::CommConfig& c = cfg.comm();
  RETURN_IF_ERROR(check_non_negative("comm.bucket_mb", c.bucket_mb()));
  RETURN_IF_ERROR(check_non_negative("comm.timeout_s", c.timeout_s()));
  if (c.backend() == config::CommConfig::BACKEND_NCCL && cfg.device() != config::JobConfig::DEVICE_CUDA)
    return Status::InvalidArgument("comm.backend=NCCL needs device=cuda (NCCL moves GPU buffers); "
                                   "use comm.backend=AUTO or MPI for CPU ranks");
  if (c.grad_dtype() == config::CommConfig::GRAD_DTYPE_BF16 &&
      (cfg.device() != config::JobConfig::DEVICE_CUDA || c.backend() == config::CommConfig::BACKEND_MPI))
    return Status::InvalidArgument("comm.grad_dtype=BF16 needs device=cuda with NCCL (MPI sums float32 only); "
                                   "use comm.grad_dtype=FP32");
  return Status::Ok();
}

// Fault injection (tests only): a fault must say what to do; seconds belong to sleep.
Status validate_debug(const config::DebugConfig& d) {
  if (!d.has_fault()) return Status::Ok();
  const config::FaultConfig& f = d.fault();
  if (f.action() == config::FaultConfig::ACTION_NONE)
    return Status::InvalidArgument("debug.fault.action must be set (sleep or skip_collective) when debug.fault is");
  if (f.rank() < 0) return bad("debug.fault.rank", ">= 0", f.rank());
  if (f.step() < 1) return bad("debug.fault.step", ">= 1 (steps are numbered from 1)", f.step());
  if (f.action() == config::FaultConfig::ACTION_SLEEP) return check_positive("debug.fault.seconds", f.seconds());
  if (f.seconds() != 0)
    return Status::InvalidArgument("debug.fault.seconds applies to action sleep only (got " + fmt(f.seconds()) + ")");
  return Status::Ok();
}

}  // namespace

Status validate_config(const config::JobConfig& cfg) {
  RETURN_IF_ERROR(validate_model(cfg.model()));
  RETURN_IF_ERROR(validate_data(cfg.data()));
  RETURN_IF_ERROR(validate_vocabulary(cfg));
  RETURN_IF_ERROR(validate_optimizer(cfg.optimizer()));
  RETURN_IF_ERROR(validate_train(cfg.train()));
  RETURN_IF_ERROR(validate_checkpoint(cfg.checkpoint()));
  RETURN_IF_ERROR(validate_comm(cfg));
  RETURN_IF_ERROR(validate_debug(cfg.debug()));
  if (cfg.train().precision() == config::TrainConfig::PRECISION_BF16 && cfg.device() != config::JobConfig::DEVICE_CUDA)
    return Status::InvalidArgument("train.precision=BF16 runs on GPUs only (device=cuda): CPU ranks compute in "
                                   "float32, the reference; use train.precision=FP32");
  return Status::Ok();
}

}  // namespace shardtrain

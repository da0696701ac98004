// validate_config: each rule fires with the dotted path of the offending field.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "config/validate.h"

namespace shardtrain {
namespace {

config::JobConfig valid_config() {
  config::JobConfig cfg;
  auto* fc1 = cfg.mutable_model()->add_layer();
  fc1->set_name("fc1");
  fc1->mutable_linear()->set_out_features(10);
  cfg.mutable_model()->add_layer()->mutable_dropout();
  cfg.mutable_train()->set_steps(10);
  return cfg;
}

// Applies `mutate` to a valid config and returns validate_config's message ("" if OK).
std::string error_after(const std::function<void(config::JobConfig&)>& mutate) {
  config::JobConfig cfg = valid_config();
  mutate(cfg);
  Status s = validate_config(cfg);
  if (!s.ok()) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  }
  return s.message();
}

TEST(ConfigValidate, DefaultsWithLayersAndStepsAreValid) {
  EXPECT_EQ(error_after([](auto&) {}), "");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_train()->clear_steps(); c.mutable_train()->set_epochs(2); }), "");
}

TEST(ConfigValidate, Model) {
  EXPECT_EQ(error_after([](auto& c) { c.mutable_model()->clear_layer(); }),
            "model.layer: the model must have at least 1 layer");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_model()->add_layer()->set_name("fc1"); }),
            "model.layer[2].name duplicates \"fc1\" (model.layer[0].name)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_model()->mutable_layer(1)->mutable_dropout()->set_p(1); }),
            "model.layer[1].dropout.p must be in [0, 1) (got 1)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_model()->mutable_layer(1)->mutable_dropout()->set_p(-0.1f); }),
            "model.layer[1].dropout.p must be in [0, 1) (got -0.1)");
}

TEST(ConfigValidate, Data) {
  EXPECT_EQ(error_after([](auto& c) { c.mutable_data()->set_path(""); }), "data.path must not be empty");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_data()->set_global_batch(0); }),
            "data.global_batch must be > 0 (got 0)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_data()->set_eval_batch(-5); }),
            "data.eval_batch must be > 0 (got -5)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_data()->set_std(0); }), "data.std must be > 0 (got 0)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_data()->set_std(NAN); }), "data.std must be > 0 (got nan)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_data()->set_num_classes(1); }),
            "data.num_classes must be >= 2 (got 1)");
}

TEST(ConfigValidate, Optimizer) {
  EXPECT_EQ(error_after([](auto& c) { c.mutable_optimizer()->set_lr(-1); }), "optimizer.lr must be > 0 (got -1)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_optimizer()->set_lr(NAN); }),
            "optimizer.lr must be > 0 (got nan)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_optimizer()->set_lr(INFINITY); }),
            "optimizer.lr must be > 0 (got inf)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_optimizer()->set_weight_decay(-0.5f); }),
            "optimizer.weight_decay must be >= 0 (got -0.5)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_optimizer()->set_momentum(1); }),
            "optimizer.momentum must be in [0, 1) (got 1)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_optimizer()->set_beta1(NAN); }),
            "optimizer.beta1 must be in [0, 1) (got nan)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_optimizer()->set_beta2(-0.5f); }),
            "optimizer.beta2 must be in [0, 1) (got -0.5)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_optimizer()->set_eps(0); }), "optimizer.eps must be > 0 (got 0)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_optimizer()->set_clip_grad_norm(-1); }),
            "optimizer.clip_grad_norm must be >= 0 (got -1)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_optimizer()->mutable_schedule()->set_warmup_steps(-3); }),
            "optimizer.schedule.warmup_steps must be >= 0 (got -3)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_optimizer()->mutable_schedule()->set_min_lr(0.5f); }),
            "optimizer.schedule.min_lr must be in [0, optimizer.lr = 0.01] (got 0.5)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_optimizer()->mutable_schedule()->set_min_lr(-0.001f); }),
            "optimizer.schedule.min_lr must be in [0, optimizer.lr = 0.01] (got -0.001)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_optimizer()->mutable_schedule()->set_min_lr(0.01f); }), "");
}

TEST(ConfigValidate, TrainNeedsExactlyOneOfStepsOrEpochs) {
  EXPECT_EQ(error_after([](auto& c) { c.mutable_train()->clear_steps(); }),
            "train: set exactly one of steps or epochs");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_train()->set_epochs(2); }),
            "train: set exactly one of steps or epochs");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_train()->set_steps(0); }), "train.steps must be > 0 (got 0)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_train()->clear_steps(); c.mutable_train()->set_epochs(-1); }),
            "train.epochs must be > 0 (got -1)");
}

TEST(ConfigValidate, StopSignalsAndBudget) {
  for (const char* ok : {"USR1,USR2,TERM", "SIGUSR1", " TERM , USR2 ", "", "USR1,USR1"})
    EXPECT_EQ(error_after([&](auto& c) { c.mutable_train()->set_stop_signals(ok); }), "") << ok;
  EXPECT_EQ(error_after([](auto& c) { c.mutable_train()->set_stop_signals("USR1,HUP"); }),
            "train.stop_signals: unknown signal \"HUP\" (use a comma-separated list of USR1, USR2, TERM; "
            "SIGINT always stops)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_train()->set_stop_signals("USR1,"); }),
            "train.stop_signals: unknown signal \"\" (use a comma-separated list of USR1, USR2, TERM; "
            "SIGINT always stops)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_train()->set_stop_signals("usr1"); }).substr(0, 46),
            "train.stop_signals: unknown signal \"usr1\" (use");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_checkpoint()->set_stop_budget_s(-1); }),
            "checkpoint.stop_budget_s must be >= 0 (got -1)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_checkpoint()->set_stop_budget_s(0); }), "");
}

TEST(ConfigValidate, TrainAndCheckpointIntervals) {
  EXPECT_EQ(error_after([](auto& c) { c.mutable_train()->set_log_every(0); }),
            "train.log_every must be > 0 (got 0)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_train()->set_eval_every(-1); }),
            "train.eval_every must be >= 0 (got -1)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_train()->set_threads(-2); }),
            "train.threads must be >= 0 (got -2)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_train()->set_max_skipped_steps(-1); }),
            "train.max_skipped_steps must be >= 0 (got -1)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_train()->set_max_consecutive_skipped_steps(-3); }),
            "train.max_consecutive_skipped_steps must be >= 0 (got -3)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_checkpoint()->set_every(-1); }),
            "checkpoint.every must be >= 0 (got -1)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_checkpoint()->set_keep_last(-1); }),
            "checkpoint.keep_last must be >= 0 (got -1)");
  EXPECT_EQ(error_after([](auto& c) { c.mutable_checkpoint()->set_every(0); c.mutable_train()->set_eval_every(0); }),
            "");
}

// bf16 is a GPU precision: CPU ranks are the fp32 reference, and MPI has no bf16 sum.
TEST(ConfigValidate, Bf16NeedsAGpu) {
  const std::string precision = error_after([](auto& c) {
    c.mutable_train()->set_precision(config::TrainConfig::PRECISION_BF16);
  });
  EXPECT_NE(precision.find("train.precision=BF16 runs on GPUs only (device=cuda)"), std::string::npos) << precision;
  EXPECT_EQ(error_after([](auto& c) {
              c.set_device(config::JobConfig::DEVICE_CUDA);
              c.mutable_train()->set_precision(config::TrainConfig::PRECISION_BF16);
            }),
            "");
  const std::string grads = error_after([](auto& c) {
    c.mutable_comm()->set_grad_dtype(config::CommConfig::GRAD_DTYPE_BF16);
  });
  EXPECT_NE(grads.find("comm.grad_dtype=BF16 needs device=cuda with NCCL"), std::string::npos) << grads;
  const std::string mpi = error_after([](auto& c) {
    c.set_device(config::JobConfig::DEVICE_CUDA);
    c.mutable_comm()->set_backend(config::CommConfig::BACKEND_MPI);
    c.mutable_comm()->set_grad_dtype(config::CommConfig::GRAD_DTYPE_BF16);
  });
  EXPECT_NE(mpi.find("comm.grad_dtype=BF16"), std::string::npos) << mpi;
}

}  // namespace
}  // namespace shardtrain

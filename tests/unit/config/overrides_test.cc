// --set overrides: every scalar type, enum spellings, nested creation, steps/epochs pairing,
// and the exact messages a user sees for mistakes.
#include <gtest/gtest.h>

#include <cctype>
#include <set>

#include "config/overrides.h"

namespace shardtrain {
namespace {

config::JobConfig set(std::vector<std::string> assignments) {
  config::JobConfig cfg;
  for (const auto& a : assignments) {
    Status s = apply_override(&cfg, a);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  return cfg;
}

std::string error_of(const std::string& assignment) {
  config::JobConfig cfg;
  Status s = apply_override(&cfg, assignment);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << assignment;
  return s.message();
}

TEST(ConfigOverride, ScalarTypes) {
  auto cfg = set({"train.steps=200", "train.threads=4", "train.seed=18446744073709551615", "optimizer.lr=0.5",
                  "data.std=-2.5e-3", "data.shuffle=false", "data.prefetch=TRUE", "data.path=/tmp/a b.h5",
                  "name=run=1"});
  EXPECT_EQ(cfg.train().steps(), 200);
  EXPECT_EQ(cfg.train().threads(), 4);
  EXPECT_EQ(cfg.train().seed(), 18446744073709551615ull);
  EXPECT_FLOAT_EQ(cfg.optimizer().lr(), 0.5f);
  EXPECT_FLOAT_EQ(cfg.data().std(), -2.5e-3f);  // range is validate_config's job
  EXPECT_FALSE(cfg.data().shuffle());
  EXPECT_TRUE(cfg.data().prefetch());
  EXPECT_EQ(cfg.data().path(), "/tmp/a b.h5");
  EXPECT_EQ(cfg.name(), "run=1");  // only the first '=' separates path and value
  EXPECT_EQ(set({"name="}).name(), "");
}

TEST(ConfigOverride, EnumsTakeFullOrShortCaseInsensitiveNames) {
  EXPECT_EQ(set({"device=cuda"}).device(), config::JobConfig::DEVICE_CUDA);
  EXPECT_EQ(set({"device=DEVICE_CUDA"}).device(), config::JobConfig::DEVICE_CUDA);
  EXPECT_EQ(set({"device=CUDA"}).device(), config::JobConfig::DEVICE_CUDA);
  EXPECT_EQ(set({"device=cuda", "device=cpu"}).device(), config::JobConfig::DEVICE_CPU);
  EXPECT_EQ(set({"optimizer.kind=adamw"}).optimizer().kind(), config::OptimizerConfig::KIND_ADAMW);
  EXPECT_EQ(set({"optimizer.kind=KIND_ADAMW"}).optimizer().kind(), config::OptimizerConfig::KIND_ADAMW);
  EXPECT_EQ(set({"train.on_nonfinite=skip"}).train().on_nonfinite(), config::TrainConfig::NONFINITE_SKIP);
  EXPECT_EQ(set({"optimizer.schedule.kind=warmup_cosine"}).optimizer().schedule().kind(),
            config::ScheduleConfig::KIND_WARMUP_COSINE);
  EXPECT_EQ(error_of("device=tpu"), "--set device=tpu: not a valid Device (one of: cpu, cuda)");
  EXPECT_EQ(set({"train.precision=bf16"}).train().precision(), config::TrainConfig::PRECISION_BF16);
  EXPECT_EQ(set({"comm.grad_dtype=BF16"}).comm().grad_dtype(), config::CommConfig::GRAD_DTYPE_BF16);
}

// Short names (`--set comm.grad_dtype=bf16`) work only when every value of an enum starts
// with the prefix spelled from the enum's name ("GradDtype" -> "GRAD_DTYPE_"): check the
// whole schema, so a new enum cannot break them unnoticed.
void expect_prefixed_enums(const google::protobuf::Descriptor* d, std::set<const google::protobuf::Descriptor*>* seen) {
  if (!seen->insert(d).second) return;
  for (int e = 0; e < d->enum_type_count(); ++e) {
    const google::protobuf::EnumDescriptor* en = d->enum_type(e);
    std::string prefix;
    for (char c : en->name()) {
      if (std::isupper(static_cast<unsigned char>(c)) && !prefix.empty()) prefix += '_';
      prefix += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    prefix += "_";
    for (int v = 0; v < en->value_count(); ++v)
      EXPECT_EQ(en->value(v)->name().rfind(prefix, 0), 0u) << en->full_name() << "." << en->value(v)->name()
                                                             << " does not start with " << prefix;
  }
  for (int f = 0; f < d->field_count(); ++f)
    if (d->field(f)->message_type()) expect_prefixed_enums(d->field(f)->message_type(), seen);
}

TEST(ConfigOverride, EveryEnumValueCarriesItsEnumsPrefix) {
  std::set<const google::protobuf::Descriptor*> seen;
  expect_prefixed_enums(config::JobConfig::descriptor(), &seen);
  EXPECT_GT(seen.size(), 10u);
}

TEST(ConfigOverride, CreatesNestedMessages) {
  auto cfg = set({"optimizer.schedule.warmup_steps=5"});
  EXPECT_TRUE(cfg.has_optimizer());
  EXPECT_TRUE(cfg.optimizer().has_schedule());
  EXPECT_EQ(cfg.optimizer().schedule().warmup_steps(), 5);
  EXPECT_FLOAT_EQ(cfg.optimizer().lr(), 0.01f);  // siblings keep their defaults
}

TEST(ConfigOverride, StepsAndEpochsClearEachOther) {
  auto epochs = set({"train.steps=100", "train.epochs=3"});
  EXPECT_FALSE(epochs.train().has_steps());
  EXPECT_EQ(epochs.train().epochs(), 3);
  auto steps = set({"train.epochs=3", "train.steps=100"});
  EXPECT_FALSE(steps.train().has_epochs());
  EXPECT_EQ(steps.train().steps(), 100);
}

TEST(ConfigOverride, ErrorsNameTheAssignmentAndReason) {
  EXPECT_EQ(error_of("train.stepz=5"), "--set train.stepz=5: TrainConfig has no field 'stepz'");
  EXPECT_EQ(error_of("trian.steps=5"), "--set trian.steps=5: JobConfig has no field 'trian'");
  EXPECT_EQ(error_of("train=5"), "--set train=5: 'train' is a message, not a scalar");
  EXPECT_EQ(error_of("train.steps.x=5"), "--set train.steps.x=5: 'train.steps' is a scalar, not a message");
  EXPECT_EQ(error_of("train.steps=abc"), "--set train.steps=abc: not a valid int64");
  EXPECT_EQ(error_of("train.steps=12x"), "--set train.steps=12x: not a valid int64");
  EXPECT_EQ(error_of("train.steps="), "--set train.steps=: not a valid int64");
  EXPECT_EQ(error_of("train.steps=99999999999999999999"), "--set train.steps=99999999999999999999: not a valid int64");
  EXPECT_EQ(error_of("train.threads=3000000000"), "--set train.threads=3000000000: not a valid int32");
  EXPECT_EQ(error_of("train.seed=-1"), "--set train.seed=-1: not a valid uint64");
  EXPECT_EQ(error_of("optimizer.lr=fast"), "--set optimizer.lr=fast: not a valid float");
  EXPECT_EQ(error_of("optimizer.lr=1e39"), "--set optimizer.lr=1e39: not a valid float");
  EXPECT_EQ(error_of("data.shuffle=yes"), "--set data.shuffle=yes: not a valid bool (true or false)");
  EXPECT_EQ(error_of("model.layer=3"),
            "--set model.layer=3: 'model.layer' is a repeated field; --set does not support repeated fields "
            "(edit the config file)");
  EXPECT_EQ(error_of("train.steps"), "--set train.steps: expected path=value (e.g. train.steps=200)");
  EXPECT_EQ(error_of("=5"), "--set =5: expected path=value (e.g. train.steps=200)");
}

TEST(ConfigOverride, FailedAssignmentLeavesConfigUnchanged) {
  config::JobConfig cfg;
  EXPECT_FALSE(apply_override(&cfg, "optimizer.schedule.bogus=1").ok());
  EXPECT_FALSE(cfg.has_optimizer());  // no half-created path
}

}  // namespace
}  // namespace shardtrain

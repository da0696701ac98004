// comm.check_sequence and debug.fault: settable by --set, validated with the field's path.
#include <gtest/gtest.h>

#include "config/overrides.h"
#include "config/validate.h"

namespace shardtrain {
namespace {

config::JobConfig valid_config() {
  config::JobConfig cfg;
  cfg.mutable_model()->add_layer()->mutable_linear()->set_out_features(10);
  cfg.mutable_train()->set_steps(10);
  return cfg;
}

// Applies the --set assignments to a valid config; returns the first error, else
// validate_config's message ("" if valid).
std::string error_after(std::vector<std::string> assignments) {
  config::JobConfig cfg = valid_config();
  for (const auto& a : assignments) {
    Status s = apply_override(&cfg, a);
    if (!s.ok()) return s.message();
  }
  Status s = validate_config(cfg);
  if (!s.ok()) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  }
  return s.message();
}

TEST(DebugConfig, FaultBySet) {
  config::JobConfig cfg = valid_config();
  for (const char* a : {"debug.fault.rank=1", "debug.fault.step=5", "debug.fault.action=sleep",
                        "debug.fault.seconds=1000", "comm.check_sequence=true", "comm.timeout_s=5"})
    ASSERT_TRUE(apply_override(&cfg, a).ok()) << a;
  EXPECT_EQ(cfg.debug().fault().rank(), 1);
  EXPECT_EQ(cfg.debug().fault().step(), 5);
  EXPECT_EQ(cfg.debug().fault().action(), config::FaultConfig::ACTION_SLEEP);
  EXPECT_FLOAT_EQ(cfg.debug().fault().seconds(), 1000);
  EXPECT_TRUE(cfg.comm().check_sequence());
  EXPECT_TRUE(validate_config(cfg).ok());
  EXPECT_EQ(error_after({"debug.fault.action=skip_collective", "debug.fault.step=3"}), "");
}

TEST(DebugConfig, FaultIsValidated) {
  EXPECT_EQ(error_after({"debug.fault.rank=1"}),
            "debug.fault.action must be set (sleep or skip_collective) when debug.fault is");
  EXPECT_EQ(error_after({"debug.fault.action=sleep"}), "debug.fault.seconds must be > 0 (got 0)");
  EXPECT_EQ(error_after({"debug.fault.action=sleep", "debug.fault.seconds=nan"}),
            "debug.fault.seconds must be > 0 (got nan)");
  EXPECT_EQ(error_after({"debug.fault.action=skip_collective", "debug.fault.seconds=3"}),
            "debug.fault.seconds applies to action sleep only (got 3)");
  EXPECT_EQ(error_after({"debug.fault.action=skip_collective", "debug.fault.rank=-1"}),
            "debug.fault.rank must be >= 0 (got -1)");
  EXPECT_EQ(error_after({"debug.fault.action=skip_collective", "debug.fault.step=0"}),
            "debug.fault.step must be >= 1 (steps are numbered from 1) (got 0)");
  EXPECT_EQ(error_after({"debug.fault.action=jump"}),
            "--set debug.fault.action=jump: not a valid Action (one of: none, sleep, skip_collective)");
  EXPECT_EQ(error_after({"comm.timeout_s=-1"}), "comm.timeout_s must be >= 0 (got -1)");
}

}  // namespace
}  // namespace shardtrain

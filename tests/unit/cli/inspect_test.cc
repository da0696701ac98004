// `shardtrain inspect`: what a user sees for a good file, --config, and the exit codes.
#include "cli/commands.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ckpt_test_util.h"

namespace shardtrain {
namespace {

using CheckpointInspect = TempDirTest;

struct InspectRun {
  int code;
  std::string out, err;
};

InspectRun run(std::vector<std::string> args) {
  args.insert(args.begin(), "inspect");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  int code = cmd_inspect(static_cast<int>(argv.size()), argv.data());
  std::string out = testing::internal::GetCapturedStdout();
  return {code, out, testing::internal::GetCapturedStderr()};
}

TEST_F(CheckpointInspect, SummaryShowsMetadataTensorsAndTotal) {
  const std::string path = file("ckpt.h5");
  ASSERT_TRUE(checkpoint_write(path, sample_checkpoint(100)).ok());
  InspectRun r = run({path, "--values"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* want : {"step            100", "world size      4", "optimizer       adamw (step 100)",
                           "epoch 2, batch 17 (123456789012 samples seen)", "fc1.weight", "[2, 3]",
                           "exp_avg_sq/fc1.bias", "min -2.25", "max 100", "1.5, -2.25, 3",
                           "total parameters  10"})
    EXPECT_NE(r.out.find(want), std::string::npos) << "missing '" << want << "' in\n" << r.out;
}

TEST_F(CheckpointInspect, CountsNonFiniteValues) {
  // checkpoint_write refuses non-finite parameters, so the NaN goes into optimizer state.
  CheckpointData d = sample_checkpoint(100);
  d.optimizer[1].data[2] = std::nanf("");  // exp_avg/fc1.bias = {6, 7, NaN}
  ASSERT_TRUE(checkpoint_write(file("nan.h5"), d).ok());
  InspectRun r = run({file("nan.h5")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("min 6            max 7            mean|x| 6.5           non-finite 1"), std::string::npos)
      << r.out;
}

TEST_F(CheckpointInspect, ConfigPrintsOnlyTheStoredConfig) {
  const std::string path = file("ckpt.h5");
  ASSERT_TRUE(checkpoint_write(path, sample_checkpoint()).ok());
  InspectRun r = run({path, "--config"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, sample_checkpoint().config_text);
}

TEST_F(CheckpointInspect, ExitCodes) {
  EXPECT_EQ(run({"--help"}).code, 0);
  InspectRun no_path = run({});
  EXPECT_EQ(no_path.code, 2);
  EXPECT_EQ(no_path.err.rfind("error: ", 0), 0u) << no_path.err;
  EXPECT_EQ(run({"a.h5", "--bogus"}).code, 2);
  InspectRun missing = run({file("missing.h5")});
  EXPECT_EQ(missing.code, 1);
  EXPECT_EQ(missing.err, "error: " + file("missing.h5") + ": no such checkpoint file\n");
}

}  // namespace
}  // namespace shardtrain

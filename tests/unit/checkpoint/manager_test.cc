// CheckpointManager: keep-last-K, the `latest` link, never overwriting, resuming past a
// damaged newest file, and cleaning up after a crashed writer.
#include "checkpoint/manager.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "ckpt_test_util.h"

namespace shardtrain {
namespace {

namespace fs = std::filesystem;
using CheckpointManagerTest = TempDirTest;

std::string read_link(const std::string& p) {
  std::error_code ec;
  return fs::read_symlink(p, ec).string();
}

TEST(CheckpointManagerNames, FileNameIsZeroPaddedStep) {
  EXPECT_EQ(CheckpointManager::file_name(100), "ckpt-00000100.h5");
  EXPECT_EQ(CheckpointManager::file_name(123456789), "ckpt-123456789.h5");
}

TEST_F(CheckpointManagerTest, SaveKeepsLastKAndLatestPointsToNewest) {
  const std::string dir = file("run/ckpt");  // does not exist yet: save creates it
  CheckpointManager m(dir, 2);
  EXPECT_FALSE(m.has_checkpoints());
  for (int64_t step : {100, 200, 300}) ASSERT_TRUE(m.save(sample_checkpoint(step)).ok());

  EXPECT_EQ(m.list(), (std::vector<std::string>{dir + "/ckpt-00000300.h5", dir + "/ckpt-00000200.h5"}));
  EXPECT_EQ(m.latest_link(), dir + "/latest");
  EXPECT_EQ(read_link(m.latest_link()), "ckpt-00000300.h5");  // relative
  StatusOr<CheckpointData> r = checkpoint_read(m.latest_link());  // --resume dir/latest
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->step, 300);
  for (const auto& e : fs::directory_iterator(dir))  // no temp files left behind
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

TEST_F(CheckpointManagerTest, ListSortsByStepNotByName) {
  CheckpointManager m(dir_, 0);  // keep all
  for (int64_t step : {5, 100000000, 40}) ASSERT_TRUE(m.save(sample_checkpoint(step)).ok());
  { std::ofstream(file("notes.h5")) << "x"; }
  EXPECT_EQ(m.list(), (std::vector<std::string>{file("ckpt-100000000.h5"), file("ckpt-00000040.h5"),
                                                file("ckpt-00000005.h5")}));
}

TEST_F(CheckpointManagerTest, RefusesToOverwriteAndLeavesFileUnchanged) {
  CheckpointManager m(dir_, 3);
  ASSERT_TRUE(m.save(sample_checkpoint(100)).ok());
  const std::string path = file("ckpt-00000100.h5");
  const auto size = fs::file_size(path);
  const auto mtime = fs::last_write_time(path);

  CheckpointData other = sample_checkpoint(100);
  other.params[0].data[0] = 42.0f;
  Status s = m.save(other);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  EXPECT_EQ(fs::file_size(path), size);
  EXPECT_EQ(fs::last_write_time(path), mtime);
  StatusOr<CheckpointData> r = checkpoint_read(path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->params[0].data[0], 1.5f);
}

TEST_F(CheckpointManagerTest, NeverDeletesTheFileJustWritten) {
  CheckpointManager m(dir_, 1);
  ASSERT_TRUE(m.save(sample_checkpoint(300)).ok());
  ASSERT_TRUE(m.save(sample_checkpoint(200)).ok());  // older step saved last (e.g. after a rollback)
  EXPECT_EQ(m.list(), std::vector<std::string>{file("ckpt-00000200.h5")});
  EXPECT_EQ(read_link(m.latest_link()), "ckpt-00000200.h5");
}

TEST_F(CheckpointManagerTest, FindLatestValidSkipsCorruptNewest) {
  CheckpointManager m(dir_, 0);
  ASSERT_TRUE(m.save(sample_checkpoint(100)).ok());
  ASSERT_TRUE(m.save(sample_checkpoint(200)).ok());
  const std::string newest = file("ckpt-00000200.h5");
  fs::resize_file(newest, fs::file_size(newest) / 2);  // a crash mid-copy, a full disk...

  testing::internal::CaptureStderr();
  CheckpointData d;
  StatusOr<std::string> r = m.find_latest_valid(&d);
  const std::string err = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, file("ckpt-00000100.h5"));
  EXPECT_EQ(d.step, 100);
  EXPECT_NE(err.find("skipping " + newest + ": not a readable HDF5 checkpoint"), std::string::npos) << err;
}

TEST_F(CheckpointManagerTest, NotFoundWhenEmptyDataLossWhenAllBad) {
  CheckpointManager missing(file("nothing-here"), 2);
  StatusOr<std::string> r = missing.find_latest_valid();
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "no checkpoint in " + file("nothing-here"));

  // Unreadable checkpoints are not "no checkpoints": a caller must not start afresh.
  { std::ofstream(file("ckpt-00000007.h5")) << "garbage"; }
  CheckpointManager bad(dir_, 2);
  testing::internal::CaptureStderr();
  StatusOr<std::string> all_bad = bad.find_latest_valid();
  testing::internal::GetCapturedStderr();
  EXPECT_EQ(all_bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(all_bad.status().message().find("none of the 1 checkpoint(s)"), std::string::npos);
}

TEST_F(CheckpointManagerTest, StaleTempFilesOfOtherProcessesAreRemoved) {
  const std::string mine = file("ckpt-00000300.h5.tmp-" + std::to_string(::getpid()));
  const std::string stale = file("ckpt-00000300.h5.tmp-999999999");
  const std::string stale_link = file("latest.tmp-999999998");
  const std::string unrelated = file("notes.tmp-123");
  for (const auto& p : {mine, stale, stale_link, unrelated}) std::ofstream(p) << "partial";

  CheckpointManager m(dir_, 2);
  ASSERT_TRUE(m.save(sample_checkpoint(100)).ok());
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_FALSE(fs::exists(stale_link));
  EXPECT_TRUE(fs::exists(mine));       // this process's: may be a write in flight
  EXPECT_TRUE(fs::exists(unrelated));  // not ours to touch
  EXPECT_TRUE(fs::exists(file("ckpt-00000100.h5")));
}

}  // namespace
}  // namespace shardtrain

// RunDirLock: one holder at a time, the refusal names the holder, release empties the file.
#include "checkpoint/run_dir_lock.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "ckpt_test_util.h"

namespace shardtrain {
namespace {

class RunDirLockTest : public TempDirTest {
 protected:
  std::string lock_text() const {
    std::ifstream f(file("run/.lock"));
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
};

TEST_F(RunDirLockTest, SecondHolderIsRefusedNamingTheFirst) {
  const std::string dir = file("run");
  auto first = RunDirLock::acquire(dir);  // creates the run dir
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  char host[256] = {0};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  const std::string pid = std::to_string(getpid());
  EXPECT_EQ(lock_text(), "host " + std::string(host) + " pid " + pid + "\n");

  // flock locks belong to an open file, so a second acquire in this process conflicts too.
  auto second = RunDirLock::acquire(dir);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(second.status().message(), "run dir " + dir + " is in use by another job (pid " + pid + " on host " +
                                           host + " holds " + dir + "/.lock); wait for it to end, or use another "
                                           "--run-dir");
  EXPECT_NE(lock_text(), "") << "a refused acquire must not touch the holder's line";

  first.value().reset();  // release
  EXPECT_EQ(lock_text(), "");
  EXPECT_TRUE(std::filesystem::exists(dir + "/.lock"));  // never deleted
  auto third = RunDirLock::acquire(dir);
  EXPECT_TRUE(third.ok()) << third.status().ToString();
}

TEST_F(RunDirLockTest, UncreatableRunDirIsAnError) {
  { std::ofstream(file("plain")) << "x"; }
  auto lock = RunDirLock::acquire(file("plain") + "/run");
  ASSERT_FALSE(lock.ok());
  EXPECT_NE(lock.status().message().find(file("plain")), std::string::npos) << lock.status().message();
}

}  // namespace
}  // namespace shardtrain

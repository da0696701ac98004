// Runs a subcommand in-process as main() would: argv in; exit code, stdout and stderr out.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace shardtrain::testing {

inline int run_command(int (*cmd)(int, char**), const std::string& name, std::vector<std::string> args,
                       std::string* err = nullptr, std::string* out = nullptr) {
  args.insert(args.begin(), name);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStderr();
  ::testing::internal::CaptureStdout();
  const int rc = cmd(int(argv.size()), argv.data());
  const std::string e = ::testing::internal::GetCapturedStderr();
  const std::string o = ::testing::internal::GetCapturedStdout();
  if (err) *err = e;
  if (out) *out = o;
  return rc;
}

}  // namespace shardtrain::testing

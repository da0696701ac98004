// Progress output: durations for ETA, the progress line, and metrics.jsonl appending.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "train/metrics.h"

namespace shardtrain {
namespace {

TEST(TrainMetrics, FormatDuration) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(59.4), "59s");
  EXPECT_EQ(format_duration(65), "1m05s");
  EXPECT_EQ(format_duration(7380), "2h03m");
  EXPECT_EQ(format_duration(-1), "?");
}

TEST(TrainMetrics, ProgressLineHasEveryField) {
  TrainLogRecord r{100, 400, 1, 0.5, 0.875, 1e-3, 2.0, 1234.0, 10.0, 30.0};
  const std::string line = progress_line(r);
  for (const char* part : {"step 100/400", "epoch 1", "loss 0.5000", "acc 87.50%", "1234 samples/s", "ETA 30s"})
    EXPECT_NE(line.find(part), std::string::npos) << part << " missing from: " << line;
}

TEST(TrainMetrics, JsonlAppendsAcrossOpens) {
  char tmpl[] = "/tmp/st_metrics_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/metrics.jsonl";
  {
    MetricsLog log;
    ASSERT_TRUE(log.open(path).ok());
    ASSERT_TRUE(log.write(TrainLogRecord{1, 2, 0, 2.3, 0.1, 0.01, 1.5, 100, 1, 1}).ok());
  }
  {
    MetricsLog log;  // a resumed run appends to the same file
    ASSERT_TRUE(log.open(path).ok());
    ASSERT_TRUE(log.write(EvalLogRecord{2, 0.4, 0.85, 10000}).ok());
  }
  std::ifstream f(path);
  std::string l1, l2, l3;
  ASSERT_TRUE(std::getline(f, l1));
  ASSERT_TRUE(std::getline(f, l2));
  EXPECT_FALSE(std::getline(f, l3));
  EXPECT_EQ(l1.front(), '{');
  EXPECT_EQ(l1.back(), '}');
  EXPECT_NE(l1.find("\"kind\":\"train\""), std::string::npos) << l1;
  EXPECT_NE(l1.find("\"step\":1,"), std::string::npos) << l1;
  EXPECT_NE(l2.find("\"kind\":\"eval\""), std::string::npos) << l2;
  EXPECT_NE(l2.find("\"test_accuracy\":0.85"), std::string::npos) << l2;
  std::remove(path.c_str());
  std::remove(tmpl);
}

// JSON has no NaN or Infinity: such values become null, so every line stays parseable.
TEST(TrainMetrics, NonFiniteValuesAreWrittenAsNull) {
  char tmpl[] = "/tmp/st_metrics_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/metrics.jsonl";
  const double nan = std::nan(""), inf = HUGE_VAL;
  {
    MetricsLog log;
    ASSERT_TRUE(log.open(path).ok());
    TrainLogRecord r{6, 20, 0, -nan, nan, 0.1, inf, 100, 1, 1};
    r.skipped_steps = 2;
    ASSERT_TRUE(log.write(r).ok());
    ASSERT_TRUE(log.write(EvalLogRecord{6, -inf, 0.5, 100}).ok());
  }
  std::ifstream f(path);
  std::string l1, l2;
  ASSERT_TRUE(std::getline(f, l1));
  ASSERT_TRUE(std::getline(f, l2));
  EXPECT_EQ(l1.find("nan"), std::string::npos) << l1;
  EXPECT_EQ(l1.find("inf"), std::string::npos) << l1;
  for (const char* part : {"\"loss\":null,", "\"accuracy\":null,", "\"grad_norm\":null,", "\"skipped_steps\":2}"})
    EXPECT_NE(l1.find(part), std::string::npos) << part << " missing from: " << l1;
  EXPECT_NE(l2.find("\"test_loss\":null,"), std::string::npos) << l2;
  std::remove(path.c_str());
  std::remove(tmpl);
}

TEST(TrainMetrics, OpenFailureNamesThePath) {
  MetricsLog log;
  Status s = log.open("/nonexistent-dir/metrics.jsonl");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent-dir/metrics.jsonl"), std::string::npos);
}

}  // namespace
}  // namespace shardtrain

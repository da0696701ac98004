// Progress output of rank 0: a human line on stdout and one JSON object per line in
// RUN_DIR/metrics.jsonl (appended, so a resumed run continues the same file). Every line
// is valid JSON: a NaN or infinite value is written as null.
#pragma once

#include <cstdio>
#include <string>

#include "core/status.h"

namespace shardtrain {

// "1m05s", "2h03m", "12s"
std::string format_duration(double seconds);

struct TrainLogRecord {
  int64_t step, total_steps, epoch;
  double loss, accuracy, lr, grad_norm;
  double samples_per_s, elapsed_s, eta_s;
  // Language models only (tokens_per_s > 0): tokens trained per second over all ranks, the
  // model FLOP/s they mean, and its fraction of the devices' peak (0 when unknown).
  double tokens_per_s = 0, flops_per_s = 0, mfu = 0;
  int64_t skipped_steps = 0;  // non-finite steps skipped so far by this process (train.on_nonfinite)
};
struct EvalLogRecord {
  int64_t step;
  double test_loss, test_accuracy;
  int64_t samples;
};

std::string progress_line(const TrainLogRecord& r);
std::string eval_line(const EvalLogRecord& r);

class MetricsLog {
 public:
  MetricsLog() = default;
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  Status open(const std::string& path);  // appends
  Status write(const TrainLogRecord& r);
  Status write(const EvalLogRecord& r);

 private:
  Status write_line(const std::string& line);
  std::FILE* f_ = nullptr;
  std::string path_;
};

}  // namespace shardtrain

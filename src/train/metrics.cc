#include "train/metrics.h"

#include <cerrno>
#include <cmath>
#include <cstring>

namespace shardtrain {

std::string format_duration(double s) {
  if (!(s >= 0) || std::isinf(s)) return "?";
  long t = std::lround(s);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

namespace {

// A JSON number, or null for NaN and infinities (JSON has no literal for them; printf's
// "nan" or "-nan" would make the whole line unreadable).
std::string json_num(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

std::string progress_line(const TrainLogRecord& r) {
  char rate[96];
  if (r.tokens_per_s <= 0)
    std::snprintf(rate, sizeof rate, "%.0f samples/s", r.samples_per_s);
  else if (r.mfu > 0)
    std::snprintf(rate, sizeof rate, "%.0f tok/s | MFU %.1f%%", r.tokens_per_s, 100 * r.mfu);
  else
    std::snprintf(rate, sizeof rate, "%.0f tok/s | %.1f GFLOP/s", r.tokens_per_s, r.flops_per_s / 1e9);
  char buf[360];
  int n = std::snprintf(buf, sizeof buf, "step %lld/%lld | epoch %lld | loss %.4f | acc %.2f%% | lr %.3g | %s | ETA %s",
                        (long long)r.step, (long long)r.total_steps, (long long)r.epoch, r.loss, 100 * r.accuracy,
                        r.lr, rate, format_duration(r.eta_s).c_str());
  if (r.skipped_steps > 0 && n > 0 && n < static_cast<int>(sizeof buf))
    std::snprintf(buf + n, sizeof buf - n, " | %lld non-finite steps skipped", (long long)r.skipped_steps);
  return buf;
}

std::string eval_line(const EvalLogRecord& r) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "eval step %lld | test loss %.4f | test accuracy %.2f%% (%lld samples)",
                (long long)r.step, r.test_loss, 100 * r.test_accuracy, (long long)r.samples);
  return buf;
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

Status MetricsLog::open(const std::string& path) {
  path_ = path;
  f_ = std::fopen(path.c_str(), "a");
  if (!f_) return Status::NotFound("cannot open " + path + " for appending: " + std::strerror(errno));
  return Status::Ok();
}

Status MetricsLog::write_line(const std::string& line) {
  if (!f_) return Status::Ok();
  if (std::fputs(line.c_str(), f_) < 0 || std::fputc('\n', f_) < 0 || std::fflush(f_) != 0)
    return Status::Internal("writing " + path_ + ": " + std::strerror(errno));
  return Status::Ok();
}

Status MetricsLog::write(const TrainLogRecord& r) {
  std::string line = "{\"kind\":\"train\",\"step\":" + std::to_string(r.step) +
                     ",\"epoch\":" + std::to_string(r.epoch) + ",\"loss\":" + json_num(r.loss) +
                     ",\"accuracy\":" + json_num(r.accuracy) + ",\"lr\":" + json_num(r.lr) +
                     ",\"grad_norm\":" + json_num(r.grad_norm) + ",\"samples_per_s\":" + json_num(r.samples_per_s);
  char elapsed[32];
  std::snprintf(elapsed, sizeof elapsed, "%.3f", r.elapsed_s);
  line += std::string(",\"elapsed_s\":") + elapsed;
  if (r.tokens_per_s > 0)
    line += ",\"tokens_per_s\":" + json_num(r.tokens_per_s) + ",\"flops_per_s\":" + json_num(r.flops_per_s);
  if (r.mfu > 0) line += ",\"mfu\":" + json_num(r.mfu);
  if (r.skipped_steps > 0) line += ",\"skipped_steps\":" + std::to_string(r.skipped_steps);
  return write_line(line + "}");
}

Status MetricsLog::write(const EvalLogRecord& r) {
  return write_line("{\"kind\":\"eval\",\"step\":" + std::to_string(r.step) + ",\"test_loss\":" +
                    json_num(r.test_loss) + ",\"test_accuracy\":" + json_num(r.test_accuracy) +
                    ",\"samples\":" + std::to_string(r.samples) + "}");
}

}  // namespace shardtrain

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

std::string progress_line(const TrainLogRecord& r) {
  char rate[96];
  if (r.tokens_per_s <= 0)
    std::snprintf(rate, sizeof rate, "%.0f samples/s", r.samples_per_s);
  else if (r.mfu > 0)
    std::snprintf(rate, sizeof rate, "%.0f tok/s | MFU %.1f%%", r.tokens_per_s, 100 * r.mfu);
  else
    std::snprintf(rate, sizeof rate, "%.0f tok/s | %.1f GFLOP/s", r.tokens_per_s, r.flops_per_s / 1e9);
  char buf[320];
  std::snprintf(buf, sizeof buf, "step %lld/%lld | epoch %lld | loss %.4f | acc %.2f%% | lr %.3g | %s | ETA %s",
                (long long)r.step, (long long)r.total_steps, (long long)r.epoch, r.loss, 100 * r.accuracy, r.lr, rate,
                format_duration(r.eta_s).c_str());
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
  char buf[512];
  int n = std::snprintf(buf, sizeof buf,
                        "{\"kind\":\"train\",\"step\":%lld,\"epoch\":%lld,\"loss\":%.6g,\"accuracy\":%.6g,"
                        "\"lr\":%.6g,\"grad_norm\":%.6g,\"samples_per_s\":%.6g,\"elapsed_s\":%.3f",
                        (long long)r.step, (long long)r.epoch, r.loss, r.accuracy, r.lr, r.grad_norm, r.samples_per_s,
                        r.elapsed_s);
  if (r.tokens_per_s > 0)
    n += std::snprintf(buf + n, sizeof buf - n, ",\"tokens_per_s\":%.6g,\"flops_per_s\":%.6g", r.tokens_per_s,
                       r.flops_per_s);
  if (r.mfu > 0) n += std::snprintf(buf + n, sizeof buf - n, ",\"mfu\":%.6g", r.mfu);
  std::snprintf(buf + n, sizeof buf - n, "}");
  return write_line(buf);
}

Status MetricsLog::write(const EvalLogRecord& r) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "{\"kind\":\"eval\",\"step\":%lld,\"test_loss\":%.6g,\"test_accuracy\":%.6g,\"samples\":%lld}",
                (long long)r.step, r.test_loss, r.test_accuracy, (long long)r.samples);
  return write_line(buf);
}

}  // namespace shardtrain

#include "cli/args.h"
#include "cli/commands.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"

namespace shardtrain {
namespace {

constexpr int kValuesShown = 8;  // --values: enough to eyeball, short enough for a terminal

const CommandSpec kInspectSpec = {
    "inspect",
    {"PATH"},
    "Prints a summary of a checkpoint file (PATH may be a run's `latest` link): metadata,\n"
    "each tensor's shape and statistics, and the parameter count. Every tensor's checksum\n"
    "is verified while reading.",
    {
        {"values", "", "also print the first values of each tensor"},
        {"config", "", "print only the stored job config (protobuf text format)"},
    },
    "example:\n  shardtrain inspect runs/cnn/checkpoints/latest\n",
};

void print_tensors(const char* title, const std::vector<HostTensor>& tensors, bool values) {
  std::printf("\n%s (%zu tensors)\n", title, tensors.size());
  size_t name_w = 4, shape_w = 5;
  for (const HostTensor& t : tensors) {
    name_w = std::max(name_w, t.name.size());
    shape_w = std::max(shape_w, shape_str(t.shape).size());
  }
  for (const HostTensor& t : tensors) {
    std::printf("  %-*s  %-*s  %10lld", static_cast<int>(name_w), t.name.c_str(), static_cast<int>(shape_w),
                shape_str(t.shape).c_str(), static_cast<long long>(t.data.size()));
    // Statistics over finite values; NaN/Inf are counted separately (a diverged run).
    float lo = INFINITY, hi = -INFINITY;
    double abs_sum = 0;
    size_t finite = 0;
    for (float v : t.data) {
      if (!std::isfinite(v)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      abs_sum += std::fabs(static_cast<double>(v));
      ++finite;
    }
    if (finite > 0) std::printf("  min %-12.6g max %-12.6g mean|x| %-12.6g", lo, hi, abs_sum / finite);
    if (finite < t.data.size()) std::printf("  non-finite %zu", t.data.size() - finite);
    std::printf("\n");
    if (values && !t.data.empty()) {
      std::printf("    ");
      const size_t n = std::min(t.data.size(), static_cast<size_t>(kValuesShown));
      for (size_t i = 0; i < n; ++i) std::printf("%s%.7g", i ? ", " : "", t.data[i]);
      std::printf("%s\n", n < t.data.size() ? ", ..." : "");
    }
  }
}

void print_summary(const std::string& path, const CheckpointData& d, bool values) {
  std::printf("file            %s\n", path.c_str());
  std::printf("format version  %d\n", d.format_version);
  std::printf("created         %s\n", d.created.c_str());
  std::printf("step            %lld\n", static_cast<long long>(d.step));
  std::printf("world size      %d\n", d.world_size);
  std::printf("optimizer       %s (step %lld)\n", d.optimizer_kind.c_str(),
              static_cast<long long>(d.optimizer_step));
  std::printf("data position   epoch %lld, batch %lld (%lld samples seen)\n", static_cast<long long>(d.data_epoch),
              static_cast<long long>(d.data_batch), static_cast<long long>(d.samples_seen));
  std::printf("seed            %llu\n", static_cast<unsigned long long>(d.seed));
  print_tensors("params", d.params, values);
  print_tensors("optimizer", d.optimizer, values);
  long long total = 0;
  for (const HostTensor& t : d.params) total += static_cast<long long>(t.data.size());
  std::printf("\ntotal parameters  %lld\n", total);
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  Args args;
  if (int code = parse_plain_command(kInspectSpec, argc, argv, &args); code >= 0) return code;
  const std::string path = args.positional(0);
  const bool values = args.has("values"), config = args.has("config");

  StatusOr<CheckpointData> d = checkpoint_read(path);
  if (!d.ok()) {
    std::fprintf(stderr, "error: %s\n", d.status().message().c_str());
    return 1;
  }
  if (config) {
    const std::string& text = d->config_text;
    std::fputs(text.c_str(), stdout);
    if (!text.empty() && text.back() != '\n') std::fputc('\n', stdout);
  } else {
    print_summary(path, *d, values);
  }
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace shardtrain

#include "core/log.h"

#include <cstdio>

namespace shardtrain {
namespace {
int g_rank = -1;
int g_world = 1;

void emit(const char* level, const std::string& msg) {
  std::string line;
  if (g_rank >= 0 && g_world > 1) line = "[rank " + std::to_string(g_rank) + "] ";
  line += level;
  line += msg;
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}
}  // namespace

void log_set_rank(int rank, int world_size) {
  g_rank = rank;
  g_world = world_size;
}
void log_info(const std::string& msg) { emit("", msg); }
void log_warn(const std::string& msg) { emit("warning: ", msg); }
void log_error(const std::string& msg) { emit("error: ", msg); }

}  // namespace shardtrain

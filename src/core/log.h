// Minimal logging: one line per message on stderr, prefixed with the rank when known.
// log_set_rank() is called once after MPI is up. Thread-safe (one write per line).
#pragma once

#include <string>

namespace shardtrain {

void log_set_rank(int rank, int world_size);
void log_info(const std::string& msg);   // printed by every rank that calls it
void log_warn(const std::string& msg);   // "warning: ..." on stderr
void log_error(const std::string& msg);  // "error: ..." on stderr

}  // namespace shardtrain

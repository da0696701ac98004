// RunDirLock: one job at a time in a run directory.
//
// Two jobs started into one run dir would interleave: one's stale-temp cleanup deletes
// the other's file mid-save, pruning deletes the other's checkpoints, and `latest` ends
// up naming an older step. So rank 0 of a training job holds an exclusive flock(2) on
// RUN_DIR/.lock from before it looks at the checkpoints until the job ends.
//
// The lock belongs to the open file, not to the file's existence: the kernel releases it
// when the process exits, however it dies (kill -9 included), so a crashed job never
// leaves a stale lock that blocks --resume. While held, the file holds one line
// "host HOSTNAME pid PID" naming the holder; it is emptied on a clean release and never
// deleted (deleting a lock file races with a process that has just opened it). On NFS,
// Linux implements flock with the server's byte-range locks, so it works across nodes.
//
// Readers (eval, inspect, sample) take no lock: checkpoints are published atomically.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"

namespace shardtrain {

class RunDirLock {
 public:
  // Creates `dir` if needed and locks dir/.lock without waiting. FailedPrecondition
  // "run dir DIR is in use by another job (pid PID on host HOST holds DIR/.lock) ..."
  // when another process (or another RunDirLock in this one) holds it. Where the file
  // system supports no locks at all, warns and returns an object that holds none.
  static StatusOr<std::unique_ptr<RunDirLock>> acquire(const std::string& dir);
  ~RunDirLock();  // empties the file and releases the lock
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

  static std::string file_name() { return ".lock"; }

 private:
  RunDirLock(int fd, bool locked) : fd_(fd), locked_(locked) {}
  int fd_;
  bool locked_;  // false where the file system has no locks (a warning said so)
};

}  // namespace shardtrain

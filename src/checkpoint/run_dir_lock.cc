#include "checkpoint/run_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "core/log.h"

namespace shardtrain {
namespace {

std::string errno_str() { return std::strerror(errno); }

// The holder's line. A holder writes it right after locking, so an empty file means we
// looked in between: wait a little for it.
std::string read_holder(const std::string& path) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    char buf[256];
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    std::string text(buf, n > 0 ? static_cast<size_t>(n) : 0);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
    if (!text.empty()) return text;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return "an unknown process";
}

// "host H pid P" -> "pid P on host H" (the order a reader asks in); anything else as is.
std::string describe_holder(const std::string& line) {
  char host[256] = {0};
  long pid = 0;
  if (std::sscanf(line.c_str(), "host %255s pid %ld", host, &pid) == 2)
    return "pid " + std::to_string(pid) + " on host " + host;
  return line;
}

}  // namespace

StatusOr<std::unique_ptr<RunDirLock>> RunDirLock::acquire(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::FailedPrecondition("cannot create run dir " + dir + ": " + ec.message());
  const std::string path = dir + "/" + file_name();
  // No O_TRUNC: the file may be another job's, whose line we must not erase.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FailedPrecondition("cannot open " + path + " to lock the run dir: " + errno_str());
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == ENOLCK || err == EOPNOTSUPP || err == ENOSYS) {  // e.g. NFS mounted with nolock
      log_warn("cannot lock " + path + " (" + std::strerror(err) + "): running without the run-dir lock; make "
               "sure no other job uses " + dir);
      return std::unique_ptr<RunDirLock>(new RunDirLock(fd, false));
    }
    ::close(fd);
    if (err != EWOULDBLOCK) return Status::FailedPrecondition("cannot lock " + path + ": " + std::strerror(err));
    return Status::FailedPrecondition("run dir " + dir + " is in use by another job (" +
                                      describe_holder(read_holder(path)) + " holds " + path +
                                      "); wait for it to end, or use another --run-dir");
  }
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "unknown");
  const std::string line = "host " + std::string(host) + " pid " + std::to_string(::getpid()) + "\n";
  // The line is for people; failing to write it (a full disk) must not stop the job.
  [[maybe_unused]] const bool written =
      ::ftruncate(fd, 0) == 0 && ::pwrite(fd, line.data(), line.size(), 0) == static_cast<ssize_t>(line.size());
  return std::unique_ptr<RunDirLock>(new RunDirLock(fd, true));
}

RunDirLock::~RunDirLock() {
  // Best effort: a line left behind names no live holder, and the next holder rewrites it.
  if (locked_) {
    [[maybe_unused]] const bool emptied = ::ftruncate(fd_, 0) == 0;
  }
  ::close(fd_);  // releases the lock
}

}  // namespace shardtrain

#include "checkpoint/manager.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include "core/log.h"

namespace fs = std::filesystem;

namespace shardtrain {
namespace {

std::string errno_str() { return std::strerror(errno); }

// fsync a file or directory by path. Directories need it too: a rename is durable only
// once the directory entry reaches the disk.
Status fsync_path(const std::string& p, bool is_dir) {
  int fd = ::open(p.c_str(), O_RDONLY | (is_dir ? O_DIRECTORY : 0) | O_CLOEXEC);
  if (fd < 0) return Status::Internal(p + ": cannot open for fsync: " + errno_str());
  int rc = ::fsync(fd);
  std::string err = rc < 0 ? errno_str() : "";
  ::close(fd);
  return rc < 0 ? Status::Internal(p + ": fsync failed: " + err) : Status::Ok();
}

// Parses "ckpt-<digits>.h5" -> step; false for anything else (including temp files).
bool parse_ckpt_name(const std::string& name, int64_t* step) {
  const std::string pre = "ckpt-", suf = ".h5";
  if (name.size() <= pre.size() + suf.size() || name.compare(0, pre.size(), pre) != 0 ||
      name.compare(name.size() - suf.size(), suf.size(), suf) != 0)
    return false;
  const std::string digits = name.substr(pre.size(), name.size() - pre.size() - suf.size());
  if (digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return false;
  *step = std::stoll(digits);
  return true;
}

// The pid in a "...tmp-<pid>" name, or -1 when `name` is not one of our temp files.
long temp_owner(const std::string& name) {
  const size_t at = name.rfind(".tmp-");
  if (at == std::string::npos || (name.compare(0, 5, "ckpt-") != 0 && name.compare(0, 7, "latest.") != 0))
    return -1;
  const std::string digits = name.substr(at + 5);
  if (digits.empty() || digits.size() > 9 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return -1;
  return std::stol(digits);
}

std::string temp_suffix() { return ".tmp-" + std::to_string(static_cast<long>(::getpid())); }

}  // namespace

CheckpointManager::CheckpointManager(std::string dir, int keep_last)
    : dir_(std::move(dir)), keep_last_(keep_last) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
}

std::string CheckpointManager::file_name(int64_t step) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "ckpt-%08" PRId64 ".h5", step);
  return buf;
}

std::string CheckpointManager::latest_link() const { return path("latest"); }

std::vector<std::string> CheckpointManager::list() const {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    int64_t step = 0;
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (parse_ckpt_name(name, &step) && it->is_regular_file(type_ec)) found.emplace_back(step, name);
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (const auto& f : found) out.push_back(path(f.second));
  return out;
}

Status CheckpointManager::save(const CheckpointData& data) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return Status::Internal(dir_ + ": cannot create checkpoint directory: " + ec.message());
  const std::string name = file_name(data.step);
  const std::string final_path = path(name);
  RETURN_IF_ERROR(move_aside_if_unreadable(final_path));
  remove_stale_temps();

  const std::string tmp = final_path + temp_suffix();
  ::unlink(tmp.c_str());  // our own leftover from an earlier failed save in this process
  Status s = checkpoint_write(tmp, data);  // removes tmp itself on failure
  if (s.ok()) {
    s = publish(tmp, final_path);
    if (!s.ok()) ::unlink(tmp.c_str());
  }
  // The line a user sees for a full disk or a diverged model: which run, which step, and
  // that nothing older was touched.
  if (!s.ok())
    return s.WithContext("checkpoint of step " + std::to_string(data.step) +
                         " not saved (older checkpoints and the latest link are unchanged)");
  RETURN_IF_ERROR(update_latest(name));
  prune(final_path);
  return Status::Ok();
}

// fsync the finished temp file, move it to its final name without ever replacing an
// existing file, and make the rename durable.
// A file already at this step's name is either a valid checkpoint (never replaced: the
// caller is about to lose data, so refuse) or one that --resume auto skipped because it
// is truncated or corrupt; that one is renamed to NAME.corrupt[.K], kept for inspection.
Status CheckpointManager::move_aside_if_unreadable(const std::string& final_path) const {
  struct stat st;
  if (::lstat(final_path.c_str(), &st) != 0) return Status::Ok();
  auto existing = checkpoint_read(final_path);
  if (existing.ok())
    return Status::FailedPrecondition(final_path + ": already exists; refusing to overwrite a checkpoint");
  std::string aside = final_path + ".corrupt";
  for (int k = 1; ::lstat(aside.c_str(), &st) == 0; ++k) aside = final_path + ".corrupt." + std::to_string(k);
  if (::rename(final_path.c_str(), aside.c_str()) != 0)
    return Status::Internal("cannot move unreadable " + final_path + " aside: " + std::strerror(errno));
  log_warn("moved unreadable " + final_path + " to " + aside + " (" + existing.status().message() + ")");
  return Status::Ok();
}

Status CheckpointManager::publish(const std::string& tmp, const std::string& final_path) {
  RETURN_IF_ERROR(fsync_path(tmp, false));
  // RENAME_NOREPLACE closes the gap between the exists-check in save() and here; file
  // systems without it (EINVAL) fall back to rename(), safe under the one-writer rule.
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_path.c_str(), RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST)
      return Status::FailedPrecondition(final_path + ": already exists; refusing to overwrite a checkpoint");
    if ((errno != EINVAL && errno != ENOSYS) || ::rename(tmp.c_str(), final_path.c_str()) != 0)
      return Status::Internal("cannot rename " + tmp + " to " + final_path + ": " + errno_str());
  }
  return fsync_path(dir_, true);
}

// `latest` is a relative symlink (the run dir can be moved or mounted elsewhere),
// created under a temp name and renamed over the old one: readers see old or new.
Status CheckpointManager::update_latest(const std::string& name) {
  const std::string tmp = latest_link() + temp_suffix();
  ::unlink(tmp.c_str());
  if (::symlink(name.c_str(), tmp.c_str()) != 0)
    return Status::Internal(tmp + ": cannot create symlink: " + errno_str());
  if (::rename(tmp.c_str(), latest_link().c_str()) != 0) {
    Status s = Status::Internal("cannot rename " + tmp + " to " + latest_link() + ": " + errno_str());
    ::unlink(tmp.c_str());
    return s;
  }
  return fsync_path(dir_, true);
}

// Temp files of other pids are leftovers of a crashed run: one job at a time holds the
// run dir (checkpoint/run_dir_lock.h), and only its rank 0 writes here.
void CheckpointManager::remove_stale_temps() const {
  const long me = static_cast<long>(::getpid());
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const long owner = temp_owner(name);
    if (owner < 0 || owner == me) continue;
    std::error_code rm_ec;
    fs::remove(it->path(), rm_ec);
    if (rm_ec) log_warn("cannot remove stale " + it->path().string() + ": " + rm_ec.message());
  }
}

// Keeps `keep` (the file just written) plus the newest keep_last - 1 others.
void CheckpointManager::prune(const std::string& keep) const {
  if (keep_last_ <= 0) return;
  int others = 0;
  for (const std::string& f : list()) {
    if (f == keep) continue;
    if (++others < keep_last_) continue;
    if (::unlink(f.c_str()) != 0) log_warn("cannot remove old checkpoint " + f + ": " + errno_str());
  }
}

StatusOr<std::string> CheckpointManager::find_latest_valid(CheckpointData* data) const {
  for (const std::string& f : list()) {
    StatusOr<CheckpointData> r = checkpoint_read(f);
    if (r.ok()) {
      if (data) *data = std::move(r).value();
      return f;
    }
    // Messages already start with the path; do not repeat it.
    std::string reason = r.status().message();
    if (reason.compare(0, f.size() + 2, f + ": ") == 0) reason = reason.substr(f.size() + 2);
    log_warn("skipping " + f + ": " + reason);
  }
  const size_t n = list().size();
  if (n == 0) return Status::NotFound("no checkpoint in " + dir_);
  // Checkpoints exist but none reads: never treat that as "start fresh", which would
  // later prune them; they may be good data this build cannot read.
  return Status::DataLoss("none of the " + std::to_string(n) + " checkpoint(s) in " + dir_ +
                          " is readable (see the warnings above): repair or move them away to start afresh");
}

}  // namespace shardtrain

// CheckpointManager: a directory of checkpoints written atomically, pruned to the last K,
// with a `latest` symlink, and the resume search that skips damaged files.
//
// Directory contents:
//   ckpt-00000100.h5        one checkpoint per saved step (file_name(step))
//   latest -> ckpt-...h5    relative symlink to the most recently saved file
//   *.tmp-<pid>             in-flight writes; stale ones from a crashed run are removed
//
// Crash safety of save(): the file is written under a temporary name, fsynced, renamed
// into place and the directory fsynced, so a visible ckpt-*.h5 is always complete; the
// `latest` link is replaced by rename(), so it is never missing or half-written. A crash
// at any point leaves at worst a stale *.tmp-* file (cleaned by the next save) and a
// `latest` that still names the previous, intact checkpoint.
//
// Only rank 0 of one job may save into a directory (replicas are identical). Not
// thread-safe; the HDF5 work inside holds hdf5_mutex().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "core/status.h"

namespace shardtrain {

class CheckpointManager {
 public:
  // keep_last <= 0 keeps every checkpoint.
  CheckpointManager(std::string dir, int keep_last);

  // Saves data as dir/file_name(data.step): creates dir if needed; FailedPrecondition if
  // a valid checkpoint already has that name (it is left untouched), while an unreadable
  // one there (skipped by --resume auto) is renamed to NAME.corrupt; then points `latest` at it, removes
  // the oldest checkpoints beyond keep_last (never the one just written) and stale temp
  // files of other processes. Failing to update `latest` is returned; failures while
  // pruning are only logged as warnings: the checkpoint itself is safe.
  Status save(const CheckpointData& data);

  // Full paths of dir/ckpt-*.h5, sorted by step, newest first. Empty if dir is missing.
  std::vector<std::string> list() const;
  bool has_checkpoints() const { return !list().empty(); }

  // The newest checkpoint that checkpoint_read accepts. Damaged ones are skipped with a
  // warning "skipping PATH: REASON". NotFound "no checkpoint in DIR" when there is none;
  // DataLoss when there are some but none reads.
  // If `data` is non-null it receives the checkpoint read (saves a second read).
  StatusOr<std::string> find_latest_valid(CheckpointData* data = nullptr) const;

  static std::string file_name(int64_t step);  // "ckpt-00000100.h5"
  std::string latest_link() const;             // dir/latest
  const std::string& dir() const { return dir_; }

 private:
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  Status move_aside_if_unreadable(const std::string& final_path) const;
  Status publish(const std::string& tmp, const std::string& final_path);
  Status update_latest(const std::string& name);
  void remove_stale_temps() const;
  void prune(const std::string& keep) const;

  std::string dir_;
  int keep_last_;
};

}  // namespace shardtrain

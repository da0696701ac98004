// ShardedLoader: the trainer's view of a dataset split — deterministic global batches,
// each rank's slice of them, and an optional background prefetch.
//
// Global batch b of epoch e is samples perm(seed, e)[b*G, b*G + G) (identity order when
// shuffle is off); with drop_last=false the last batch of an epoch is short. Rank r of W
// takes elements [B*r/W, B*(r+1)/W) of a global batch of size B, so the ranks' slices are
// disjoint, cover the batch, and are equal when W divides B. Everything depends only on
// (seed, epoch, batch), so a run resumed with seek() sees exactly the batches it would
// have, and every world size sees the same global batches.
//
// Thread safety: one thread uses a ShardedLoader; the prefetch thread is internal.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "data/batch.h"
#include "data/sample_source.h"

namespace shardtrain {

struct LoaderOptions {
  std::string path, split;  // for messages
  int64_t global_batch = 0;
  std::string batch_field = "data.global_batch";  // the config field global_batch came from (for errors)
  int rank = 0, world_size = 1;
  uint64_t seed = 0;
  bool shuffle = true;
  bool drop_last = true;  // false for evaluation: every sample exactly once per epoch
  bool prefetch = true;
};

struct LoaderPosition {
  int64_t epoch = 0, batch = 0;  // the next batch next() will return
};

class ShardedLoader {
 public:
  // Batches of samples from `source`. InvalidArgument: global_batch <= 0, rank/world_size
  // out of range, or (with drop_last) global_batch > N or not divisible by world_size.
  static StatusOr<std::unique_ptr<ShardedLoader>> open(const LoaderOptions& opts,
                                                       std::unique_ptr<SampleSource> source);
  ~ShardedLoader();  // joins the prefetch thread
  ShardedLoader(const ShardedLoader&) = delete;
  ShardedLoader& operator=(const ShardedLoader&) = delete;

  const std::vector<FieldSpec>& fields() const { return source_->fields(); }
  int64_t num_samples() const;
  int64_t batches_per_epoch() const { return batches_per_epoch_; }

  // Returns the batch at position() and advances (after the last batch of an epoch, to
  // batch 0 of the next). On error the position does not move. Identical results with
  // and without prefetch; an error on the prefetch thread surfaces here.
  StatusOr<Batch> next();
  // The batch the next call to next() returns (a prefetched batch is not counted).
  LoaderPosition position() const { return pos_; }
  // Moves to `p`; drops any prefetched batch. InvalidArgument unless p.epoch >= 0 and
  // 0 <= p.batch < batches_per_epoch().
  Status seek(LoaderPosition p);


 private:
  // The samples (indices into the split) of this rank's slice of batch `p`, in batch order.
  std::vector<int64_t> rank_indices(LoaderPosition p);
  explicit ShardedLoader(const LoaderOptions& opts) : opts_(opts) {}
  StatusOr<Batch> read_batch(LoaderPosition p);  // the only place samples are read
  void prefetch_start(LoaderPosition p);
  void prefetch_drop();
  LoaderPosition advance(LoaderPosition p) const;

  LoaderOptions opts_;
  std::unique_ptr<SampleSource> source_;
  int64_t batches_per_epoch_ = 0;
  LoaderPosition pos_;
  // The permutation of one epoch, cached. Touched only by read_batch, and at most one
  // read_batch runs at a time (next() and seek() join the prefetch thread first).
  std::vector<int64_t> perm_;
  int64_t perm_epoch_ = -1;
  // Prefetch: `worker_` reads the batch at pos_ into `prefetched_`; joined before use.
  std::thread worker_;
  std::optional<StatusOr<Batch>> prefetched_;
};

}  // namespace shardtrain

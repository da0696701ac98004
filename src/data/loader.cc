#include "data/loader.h"

#include <algorithm>
#include <new>
#include <numeric>

#include "data/shuffle.h"

namespace shardtrain {

StatusOr<std::unique_ptr<ShardedLoader>> ShardedLoader::open(const LoaderOptions& opts,
                                                             std::unique_ptr<SampleSource> source) {
  const int64_t g = opts.global_batch, w = opts.world_size;
  if (w < 1 || opts.rank < 0 || opts.rank >= w) {
    return Status::InvalidArgument("loader: rank " + std::to_string(opts.rank) +
                                   " is outside the world size " + std::to_string(w));
  }
  if (g <= 0) {
    return Status::InvalidArgument(opts.batch_field + " (" + std::to_string(g) + ") must be > 0");
  }
  if (opts.drop_last && g % w != 0) {
    return Status::InvalidArgument(opts.batch_field + " (" + std::to_string(g) +
                                   ") must be divisible by the world size (" +
                                   std::to_string(w) + ")");
  }
  std::unique_ptr<ShardedLoader> l(new ShardedLoader(opts));
  l->source_ = std::move(source);
  const int64_t n = l->source_->num_samples();
  // Without drop_last (evaluation) a batch larger than the split is one short batch.
  if (opts.drop_last && g > n) {
    return Status::InvalidArgument(opts.batch_field + " (" + std::to_string(g) +
                                   ") is larger than split " + opts.split + " of " +
                                   opts.path + " (" + std::to_string(n) + " samples)");
  }
  l->batches_per_epoch_ = opts.drop_last ? n / g : (n + g - 1) / g;
  return l;
}

ShardedLoader::~ShardedLoader() { prefetch_drop(); }

int64_t ShardedLoader::num_samples() const { return source_->num_samples(); }

LoaderPosition ShardedLoader::advance(LoaderPosition p) const {
  return ++p.batch == batches_per_epoch_ ? LoaderPosition{p.epoch + 1, 0} : p;
}

std::vector<int64_t> ShardedLoader::rank_indices(LoaderPosition p) {
  const int64_t n = source_->num_samples(), g = opts_.global_batch;
  const int64_t begin = p.batch * g, size = std::min(g, n - begin);
  const int64_t w = opts_.world_size, r = opts_.rank;
  const int64_t lo = begin + size * r / w, hi = begin + size * (r + 1) / w;
  if (!opts_.shuffle) {
    std::vector<int64_t> out(static_cast<size_t>(hi - lo));
    std::iota(out.begin(), out.end(), lo);
    return out;
  }
  if (perm_epoch_ != p.epoch) {
    perm_ = shuffle_permutation(n, opts_.seed, p.epoch);
    perm_epoch_ = p.epoch;
  }
  return std::vector<int64_t>(perm_.begin() + lo, perm_.begin() + hi);
}

StatusOr<Batch> ShardedLoader::read_batch(LoaderPosition p) {
  const int64_t n = source_->num_samples(), g = opts_.global_batch;
  Batch b;
  b.epoch = p.epoch;
  b.index = p.batch;
  b.global_size = std::min(g, n - p.batch * g);
  b.sample_offset = b.global_size * opts_.rank / opts_.world_size;
  b.samples = rank_indices(p);
  const std::vector<int64_t>& want = b.samples;
  b.size = static_cast<int64_t>(want.size());

  // Read in ascending file order (contiguous runs coalesce, the file is walked forwards),
  // then put each row back at its place in the batch.
  std::vector<int64_t> order(want.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return want[a] < want[c]; });
  std::vector<int64_t> sorted(want.size());
  for (size_t i = 0; i < order.size(); ++i) sorted[i] = want[order[i]];

  std::vector<BatchTensor> read;
  RETURN_IF_ERROR(source_->read(sorted, &read));
  b.fields.resize(read.size());
  for (size_t f = 0; f < read.size(); ++f) {
    const size_t row = static_cast<size_t>(read[f].spec.row_bytes());
    b.fields[f].spec = read[f].spec;
    b.fields[f].bytes.resize(read[f].bytes.size());
    for (size_t i = 0; i < order.size(); ++i)
      std::copy_n(read[f].bytes.begin() + i * row, row, b.fields[f].bytes.begin() + order[i] * row);
  }
  return b;
}

void ShardedLoader::prefetch_start(LoaderPosition p) {
  prefetched_.reset();
  worker_ = std::thread([this, p] {
    // An exception must not escape a thread (std::terminate): a batch too large for host
    // memory comes back to next() as an error naming the batch size instead.
    try {
      prefetched_.emplace(read_batch(p));
    } catch (const std::bad_alloc&) {
      prefetched_.emplace(Status::Unavailable("out of host memory reading a batch of " +
                                              std::to_string(opts_.global_batch) + " samples (" + opts_.batch_field +
                                              ")"));
    }
  });
}

void ShardedLoader::prefetch_drop() {
  if (worker_.joinable()) worker_.join();
  prefetched_.reset();
}

StatusOr<Batch> ShardedLoader::next() {
  if (!opts_.prefetch) {
    StatusOr<Batch> b = read_batch(pos_);
    if (b.ok()) pos_ = advance(pos_);
    return b;
  }
  if (!worker_.joinable()) prefetch_start(pos_);  // first call, or after seek / an error
  worker_.join();
  StatusOr<Batch> b = std::move(*prefetched_);
  prefetched_.reset();
  if (!b.ok()) return b;  // position unchanged: the next call retries this batch
  pos_ = advance(pos_);
  prefetch_start(pos_);
  return b;
}

Status ShardedLoader::seek(LoaderPosition p) {
  if (p.epoch < 0 || p.batch < 0 || p.batch >= batches_per_epoch_) {
    return Status::InvalidArgument(
        "loader: cannot seek to epoch " + std::to_string(p.epoch) + " batch " +
        std::to_string(p.batch) + " (split " + opts_.split + " has " +
        std::to_string(batches_per_epoch_) + " batches per epoch)");
  }
  prefetch_drop();
  pos_ = p;
  return Status::Ok();
}

}  // namespace shardtrain

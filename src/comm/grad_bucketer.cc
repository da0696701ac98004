#include "comm/grad_bucketer.h"

#include <cstdint>

namespace shardtrain {

std::vector<GradBucket> grad_bucket_layout(const std::vector<GradTensor>& tensors, int64_t cap_bytes) {
  std::vector<GradBucket> out;
  const int64_t cap = cap_bytes > 0 ? cap_bytes / static_cast<int64_t>(sizeof(float)) : INT64_MAX;
  for (int i = static_cast<int>(tensors.size()) - 1; i >= 0; --i) {
    const GradTensor& t = tensors[i];
    // Join the open bucket unless that takes it past the cap (a bucket holding nothing
    // yet takes any tensor, so an oversized tensor gets a bucket of its own).
    if (!out.empty() && (out.back().numel == 0 || out.back().numel + t.numel <= cap)) {
      GradBucket& b = out.back();
      b.contiguous = b.contiguous && t.offset + t.numel == tensors[b.first].offset;
      b.first = i;
      b.numel += t.numel;
      continue;
    }
    out.push_back(GradBucket{i, i, t.numel, true, 0});
  }
  // Offsets: the flat range for views, consecutive staging ranges for the rest.
  int64_t staging = 0;
  for (GradBucket& b : out) {
    if (b.contiguous) {
      b.offset = tensors[b.first].offset;
    } else {
      b.offset = staging;
      staging += b.numel;
    }
  }
  return out;
}

int64_t grad_bucket_staging_numel(const std::vector<GradBucket>& layout) {
  int64_t n = 0;
  for (const GradBucket& b : layout)
    if (!b.contiguous) n += b.numel;
  return n;
}

StatusOr<std::unique_ptr<GradReducer>> GradReducer::create(Communicator& comm, Backend& backend, float* flat_grads,
                                                           std::vector<GradTensor> tensors, int64_t cap_bytes,
                                                           CommDType wire) {
  if (wire != CommDType::kFloat32 && !(wire == CommDType::kBFloat16 && comm.supports_bf16()))
    return Status::InvalidArgument("comm.grad_dtype BF16 needs NCCL (GPU ranks on their own GPUs); the " + comm.name() +
                                   " communicator sums float32 only");
  return std::make_unique<GradReducer>(comm, backend, flat_grads, std::move(tensors), cap_bytes, wire);
}

GradReducer::GradReducer(Communicator& comm, Backend& backend, float* flat_grads, std::vector<GradTensor> tensors,
                         int64_t cap_bytes, CommDType wire)
    : comm_(comm), backend_(backend), flat_(flat_grads), tensors_(std::move(tensors)), wire_(wire) {
  layout_ = grad_bucket_layout(tensors_, cap_bytes);
  if (wire_ != CommDType::kFloat32) {  // every bucket travels through the staging buffer
    int64_t offset = 0;
    for (GradBucket& bk : layout_) {
      bk.contiguous = false;
      bk.offset = offset;
      offset += bk.numel;
    }
  }
  const int64_t staging = grad_bucket_staging_numel(layout_);
  if (staging > 0) staging_ = backend_.alloc({staging}, wire_ == CommDType::kBFloat16 ? DType::kBFloat16 : DType::kFloat32);
}

// Pack and unpack both walk a bucket's tensors in layout order (first..last).
void GradReducer::collect_segments(const GradBucket& bk) {
  segments_.clear();
  for (int t = bk.first; t <= bk.last; ++t) segments_.push_back({flat_ + tensors_[t].offset, tensors_[t].numel});
}

Status GradReducer::issue(size_t b) {
  const GradBucket& bk = layout_[b];
  void* buf = flat_ + bk.offset;
  if (!bk.contiguous) {
    Tensor staged = staging_.slice(bk.offset, {bk.numel});
    collect_segments(bk);
    backend_.grad_bucket_pack(segments_.data(), static_cast<int>(segments_.size()), 1.0f, staged);
    buf = staged.data<char>();
  }
  auto work = comm_.all_reduce_async(buf, bk.numel, wire_, ReduceOp::kSum);
  if (!work.ok()) return work.status().WithContext("gradient bucket " + std::to_string(b));
  in_flight_.push_back(std::move(work).value());
  return Status::Ok();
}

void GradReducer::ready_from(int first_ready) {
  while (error_.ok() && next_ < layout_.size() && layout_[next_].first >= first_ready) {
    error_ = issue(next_);
    ++next_;
  }
}

Status GradReducer::finish() {
  while (error_.ok() && next_ < layout_.size()) {
    error_ = issue(next_);
    ++next_;
  }
  // Wait for every issued work, even after an error, so no buffer is still in use.
  for (CommWorkPtr& w : in_flight_) {
    Status s = w->wait();
    if (error_.ok() && !s.ok()) error_ = s;
  }
  in_flight_.clear();
  if (error_.ok()) {
    for (const GradBucket& bk : layout_) {
      if (bk.contiguous) continue;
      collect_segments(bk);
      backend_.grad_bucket_unpack(staging_.slice(bk.offset, {bk.numel}), 1.0f, segments_.data(),
                                  static_cast<int>(segments_.size()));
    }
  }
  Status out = error_;
  error_ = Status::Ok();
  next_ = 0;
  return out;
}

}  // namespace shardtrain

// Gradient buckets: which gradients travel together in one collective, and the reducer
// that sums them over ranks while backward is still running (PyTorch DDP's Reducer, in
// small).
//
// Layout. Gradients are grouped in backward order (the last layer's first, because
// backward produces them first) into buckets of about `cap_bytes`; a bucket closes when
// the next gradient would take it past the cap, and a gradient larger than the cap gets a
// bucket of its own. cap_bytes <= 0 means one bucket for everything. When a bucket's
// gradients are adjacent in the flat gradient buffer (the Model lays them out that way,
// like DDP's gradient_as_bucket_view) the bucket is a view and is reduced in place; when
// they are not, it is packed into a staging buffer (Backend::grad_bucket_pack), reduced
// there and unpacked.
//
// Reduction. The model reports, after each layer's backward, that every gradient from
// some index on is final (ready_from); every bucket that is now complete is issued as an
// async collective at once, so on NCCL the all-reduce of late layers runs on the
// communication stream while earlier layers are still in backward. finish() issues the
// rest and waits for everything. Buckets are issued in the same order on every rank
// (backward order is the same everywhere), which collectives require.
//
// Determinism: the layout is a pure function of the tensor sizes and the cap, so a resumed
// run reduces exactly the same buckets in the same order.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "comm/communicator.h"

namespace shardtrain {

// One gradient tensor: a range of the flat gradient buffer. Listed in layout order.
struct GradTensor {
  int64_t offset;
  int64_t numel;
};

struct GradBucket {
  int first, last;       // tensors [first, last] (layout order); the bucket fills from `last` down
  int64_t numel;         // total elements
  bool contiguous;       // tensors adjacent in the flat buffer: reduced in place at `offset`
  int64_t offset;        // contiguous: start in the flat buffer; else: start in the staging buffer
};

// Buckets in issue order (bucket 0 holds the last tensors). REQUIRES: numel >= 0.
std::vector<GradBucket> grad_bucket_layout(const std::vector<GradTensor>& tensors, int64_t cap_bytes);

// Elements of staging buffer the non-contiguous buckets of `layout` need.
int64_t grad_bucket_staging_numel(const std::vector<GradBucket>& layout);

// Sums a flat fp32 gradient buffer over the ranks of `comm`, bucket by bucket.
// Thread-safety: none (the trainer's thread).
class GradReducer {
 public:
  // flat_grads: device buffer of `backend` (the communicator's buffer device).
  // wire: the dtype gradients are summed in. kFloat32, or kBFloat16 (comm.grad_dtype:
  // half the bytes, sums rounded to bf16; every bucket is then packed into a bf16 staging
  // buffer and widened back after the sum). REQUIRES: comm, backend and the buffer outlive
  // the reducer; a bf16 wire needs comm.supports_bf16() (create() checks).
  static StatusOr<std::unique_ptr<GradReducer>> create(Communicator& comm, Backend& backend, float* flat_grads,
                                                       std::vector<GradTensor> tensors, int64_t cap_bytes,
                                                       CommDType wire = CommDType::kFloat32);
  GradReducer(Communicator& comm, Backend& backend, float* flat_grads, std::vector<GradTensor> tensors,
              int64_t cap_bytes, CommDType wire = CommDType::kFloat32);

  const std::vector<GradBucket>& layout() const { return layout_; }

  // Every tensor with index >= first_ready is final for this step: issues each bucket
  // that has become complete. Errors are kept and returned by finish().
  void ready_from(int first_ready);
  // Issues the buckets not yet issued, waits for all, unpacks staged ones and returns the
  // first error of the step. The next step starts afresh.
  Status finish();

 private:
  Status issue(size_t b);
  void collect_segments(const GradBucket& bk);  // into segments_

  Communicator& comm_;
  Backend& backend_;
  float* flat_;
  std::vector<GradTensor> tensors_;
  std::vector<GradBucket> layout_;
  CommDType wire_;
  Tensor staging_;
  std::vector<GradSegment> segments_;  // scratch for pack/unpack
  size_t next_ = 0;                    // first bucket not yet issued this step
  std::vector<CommWorkPtr> in_flight_;
  Status error_;
};

}  // namespace shardtrain

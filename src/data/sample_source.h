// SampleSource: what the sharded loader reads samples from. A sample is a fixed set of
// named fields (FieldSpec); the loader decides which samples (shuffling, sharding over
// ranks) and a source reads them from storage.
//
// Sources: ImageSource (data/image_source.h: an image split + labels) and TokenSource
// (data/token_source.h: windows of a 1-D token split).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "data/batch.h"

namespace shardtrain {

class SampleSource {
 public:
  virtual ~SampleSource() = default;
  virtual int64_t num_samples() const = 0;
  virtual const std::vector<FieldSpec>& fields() const = 0;
  // Reads samples `indices` (REQUIRES: strictly increasing, each in [0, num_samples()))
  // into `out`, one BatchTensor per field in fields() order, rows in the order of
  // `indices`. Errors (bad label, token out of range, I/O) name the file, dataset and
  // sample. Called from the loader's prefetch thread, one call at a time.
  virtual Status read(const std::vector<int64_t>& indices, std::vector<BatchTensor>* out) = 0;
};

}  // namespace shardtrain

// ImageSource: an image split (data/h5_dataset.h) as samples of two fields, "images"
// (float32 [C, H, W], normalised) and "labels" (int32 scalar).
#pragma once

#include <memory>

#include "data/h5_dataset.h"
#include "data/sample_source.h"

namespace shardtrain {

class ImageSource final : public SampleSource {
 public:
  // Errors of H5SplitReader::open pass through.
  static StatusOr<std::unique_ptr<ImageSource>> open(const H5SplitOptions& opts);
  int64_t num_samples() const override { return reader_->num_samples(); }
  const std::vector<FieldSpec>& fields() const override { return fields_; }
  Status read(const std::vector<int64_t>& indices, std::vector<BatchTensor>* out) override;

 private:
  std::unique_ptr<H5SplitReader> reader_;
  std::vector<FieldSpec> fields_;
};

}  // namespace shardtrain

// Batch: one rank's slice of a global batch as named host arrays ("images" + "labels", or
// "tokens" + "targets"), and what a SampleSource reads samples into.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace shardtrain {

// One field of every sample: its name, per-sample shape and dtype.
struct FieldSpec {
  std::string name;
  Shape shape;  // without the batch dimension; {} for a scalar label
  DType dtype = DType::kFloat32;
  int64_t row_bytes() const { return shape_numel(shape) * static_cast<int64_t>(dtype_size(dtype)); }
};

// A field's values for a run of samples: [samples, shape...] of spec.dtype, row-major.
struct BatchTensor {
  FieldSpec spec;
  std::vector<unsigned char> bytes;
  template <typename T> const T* data() const { return reinterpret_cast<const T*>(bytes.data()); }
  template <typename T> T* data() { return reinterpret_cast<T*>(bytes.data()); }
};

struct Batch {
  int64_t epoch = 0, index = 0;  // epoch and batch number within it
  int64_t global_size = 0;       // samples in this global batch (short only for the last
                                 // batch with drop_last=false)
  int64_t sample_offset = 0;     // index of this rank's first sample within the global batch
  int64_t size = 0;              // this rank's samples (may be 0 in a short last batch)
  std::vector<BatchTensor> fields;  // in the source's field order
  std::vector<int64_t> samples;  // [size] indices into the split (for tests and debugging)

  // The field named `name`, or null.
  const BatchTensor* field(const std::string& name) const {
    for (const BatchTensor& f : fields)
      if (f.spec.name == name) return &f;
    return nullptr;
  }
};

}  // namespace shardtrain

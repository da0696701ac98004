// IDX files (the MNIST / Fashion-MNIST distribution format), gzipped or not.
//
// Layout: a 4-byte big-endian magic 0x0000TTDD (TT = 0x08 for unsigned bytes, DD = number
// of dimensions), DD big-endian uint32 dimensions, then the row-major data. shardtrain
// reads only unsigned-byte images (0x0803, [N, H, W]) and labels (0x0801, [N]).
// zlib's gzread reads plain files transparently, so one code path handles both.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace shardtrain {

struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // [count, rows, cols], row-major
};

// Errors name the file: NotFound (cannot open), InvalidArgument (wrong magic or a zero /
// absurd dimension), DataLoss (truncated or corrupt gzip stream).
StatusOr<IdxImages> idx_read_images(const std::string& path);
StatusOr<std::vector<uint8_t>> idx_read_labels(const std::string& path);

// Both files of one split, checked to hold the same number of samples.
struct IdxSplit {
  IdxImages images;
  std::vector<uint8_t> labels;
};
StatusOr<IdxSplit> idx_read_split(const std::string& images_path,
                                  const std::string& labels_path);

}  // namespace shardtrain

// The on-disk dataset layout and its reader/writer.
//
// One HDF5 file holds one group per split (/train, /test, ...). Each group holds
//   images  integer [N, C, H, W]  (IDX 28x28 images are stored as [N, 1, 28, 28])
//   labels  integer [N]
// written by import-idx as chunked, deflate-compressed uint8.
//
// Every HDF5 call here holds hdf5_mutex() (core/hdf5_lock.h): the loader reads on a
// background thread while the trainer writes checkpoints, and Debian's parallel HDF5 is
// not thread-safe. No MPI is needed: files are opened with the default (POSIX) driver and
// each rank reads only its own rows.
#pragma once

#include <hdf5.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace shardtrain {

// Writes `split` (images uint8 [N, C, H, W], labels uint8 [N]) into `path`, creating the
// file if needed. Never overwrites: a split that already exists is FailedPrecondition
// naming file and split. On failure the partly written split group is removed again.
// REQUIRES: images_shape has rank 4 and all dims > 0; `images` holds shape_numel bytes and
// `labels` holds images_shape[0] bytes.
Status h5_write_split(const std::string& path, const std::string& split,
                      const Shape& images_shape, const uint8_t* images,
                      const uint8_t* labels);

struct H5SplitOptions {
  std::string path, split;
  std::string images_dataset = "images", labels_dataset = "labels";
  float mean = 0, std = 1;   // pixels become (x / 255 - mean) / std
  int64_t num_classes = 10;  // labels must lie in [0, num_classes)
};

// One split opened read-only. Thread-compatible: read() may be called from any thread,
// one call at a time per reader (HDF5 calls are serialised by hdf5_mutex() regardless).
class H5SplitReader {
 public:
  // NotFound: the file does not exist (the message says how to create it).
  // DataLoss: not an HDF5 file, or corrupt.
  // InvalidArgument: split or dataset missing, non-integer dtype, wrong rank, or images
  //   and labels disagree on N (message names file, dataset path, found vs expected).
  static StatusOr<std::unique_ptr<H5SplitReader>> open(const H5SplitOptions& opts);
  ~H5SplitReader();
  H5SplitReader(const H5SplitReader&) = delete;
  H5SplitReader& operator=(const H5SplitReader&) = delete;

  int64_t num_samples() const { return num_samples_; }
  const Shape& sample_shape() const { return sample_shape_; }  // {C, H, W}
  int64_t sample_numel() const { return sample_numel_; }

  // Reads rows `indices` (REQUIRES: strictly increasing, each in [0, N)) with one
  // hyperslab selection per run of consecutive indices, so only those rows are touched.
  // Writes indices.size() * sample_numel() floats to `images` and indices.size() int32s
  // to `labels`, in the order of `indices`. A label outside [0, num_classes) is DataLoss
  // naming file, dataset and sample index.
  Status read(const std::vector<int64_t>& indices, float* images, int32_t* labels);

  // Rows selected in the file by all read() calls so far (for tests and diagnostics).
  int64_t rows_read() const { return rows_read_.load(); }

 private:
  H5SplitReader() = default;
  Status read_locked(const std::vector<int64_t>& indices, std::vector<uint8_t>* pixels,
                     std::vector<int64_t>* labels);

  H5SplitOptions opts_;
  std::string images_path_, labels_path_;  // "/train/images", for messages
  hid_t file_ = -1, images_ = -1, labels_ = -1;
  int64_t num_samples_ = 0, sample_numel_ = 0;
  Shape sample_shape_;
  std::atomic<int64_t> rows_read_{0};
};

}  // namespace shardtrain

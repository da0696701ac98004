// One checkpoint file: the data it holds and how it is laid out in HDF5.
//
// The file is a user-facing format: anything that reads HDF5 (h5py, h5dump) can read it.
// Layout, format version 1:
//
//   /meta      attributes:
//                format_version  int64   kCheckpointFormatVersion (readers refuse newer)
//                step            int64   optimizer steps completed
//                world_size      int64   ranks of the job that wrote it
//                config          string  the effective job config, protobuf text format
//                optimizer_kind  string  "sgd" | "adamw"
//                optimizer_step  int64   the optimizer's own step counter
//                created         string  UTC write time, ISO 8601 ("2024-05-01T12:00:00Z")
//   /params/NAME                 float32 dataset, the tensor's shape ("fc1.weight")
//   /optimizer/STATE/NAME        float32 dataset per optimizer state and parameter
//                                ("exp_avg/fc1.weight" -> /optimizer/exp_avg/fc1.weight);
//                                SGD without momentum has an empty /optimizer group
//   /rng       attributes:
//                seed            uint64  the job's base seed
//                scheme          string  a sentence on how streams are derived (below)
//   /data      attributes:
//                epoch, batch    int64   loader position of the NEXT batch to train on
//                samples_seen    int64   training samples consumed so far (all ranks)
//
// All strings are variable-length UTF-8 (h5py reads them as str). Every tensor dataset
// is contiguous and carries a uint64 attribute `fnv1a64`: FNV-1a 64 over its float32
// values in row-major order as little-endian bytes; readers verify it. Groups track link
// creation order, so tensors read back in the order they were written.
//
// RNG state: all randomness in shardtrain is counter-based, derived from (seed, purpose,
// step or epoch), so the seed plus /meta step and /data epoch is the whole RNG state.
//
// Who writes: only rank 0. Data-parallel replicas hold identical parameters and optimizer
// state, so one serial writer (no MPI-IO) suffices. The file is built in memory by HDF5's
// core driver and written with plain POSIX calls (checkpoint.cc says why: a disk error
// inside HDF5 1.10 leaves the library unable to shut down).
//
// Thread safety: both functions hold hdf5_mutex() for the whole file operation.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace shardtrain {

inline constexpr int kCheckpointFormatVersion = 1;

struct HostTensor {
  std::string name;
  Shape shape;
  std::vector<float> data;  // row-major; size() == shape_numel(shape)
};

struct CheckpointData {
  int64_t step = 0;                   // optimizer steps completed
  int world_size = 1;
  std::string config_text;            // effective job config (protobuf text format)
  std::vector<HostTensor> params;     // "fc1.weight" -> /params/fc1.weight
  std::string optimizer_kind;         // "sgd" | "adamw"
  int64_t optimizer_step = 0;
  std::vector<HostTensor> optimizer;  // "exp_avg/fc1.weight" -> /optimizer/exp_avg/fc1.weight
  uint64_t seed = 0;                  // counter-based RNG: (seed, purpose, step/epoch)
  int64_t data_epoch = 0, data_batch = 0;  // loader position of the next batch
  int64_t samples_seen = 0;
  // Filled by checkpoint_read (UTC, ISO 8601); checkpoint_write ignores it and stamps now.
  std::string created;
  int format_version = kCheckpointFormatVersion;  // filled by checkpoint_read
};

// Writes `data` to exactly `path`, which must not exist (O_EXCL: never overwrites).
// Atomic replacement is the CheckpointManager's job, not this function's. On failure a
// partially written `path` is removed, and a disk error names the errno ("PATH: cannot
// write the checkpoint (N bytes): No space left on device"). The file is closed before
// returning; the caller fsyncs if it needs durability. Peak extra host memory: two
// copies of the file for a moment (HDF5's in-memory image and the one written), then one.
// REQUIRES: param names non-empty without '/'; optimizer names "STATE/NAME"; names
// unique; each data.size() equals its shape's numel (else InvalidArgument).
// A parameter holding NaN or inf is refused with NonFinite, naming the tensor.
Status checkpoint_write(const std::string& path, const CheckpointData& data);

// Reads and validates everything: layout, attribute types, tensor types, checksums.
//   missing file                         -> NotFound
//   not HDF5 / truncated                 -> DataLoss "PATH: not a readable HDF5 checkpoint (truncated or corrupt?)"
//   missing group/attribute/tensor       -> DataLoss naming PATH and the object
//   checksum mismatch                    -> DataLoss "PATH: tensor NAME fails its checksum (corrupt checkpoint)"
//   format_version newer than supported  -> FailedPrecondition
// Tensors come back in the order written; optimizer tensors grouped by state.
StatusOr<CheckpointData> checkpoint_read(const std::string& path);

// Checks that `got` (tensors read from checkpoint `path`) holds exactly the `expected`
// (name, shape) pairs: none missing, none extra, same shapes. Order does not matter.
// Fails with InvalidArgument (the job config does not fit the checkpoint) listing the
// problems, e.g. "ckpt-00000100.h5: tensor fc1.weight has shape [128, 784] in the
// checkpoint but [256, 784] in the model".
Status checkpoint_match(const std::string& path, const std::vector<HostTensor>& got,
                        const std::vector<std::pair<std::string, Shape>>& expected);

}  // namespace shardtrain

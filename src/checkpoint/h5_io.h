// Small checked HDF5 helpers for the checkpoint format: an owning handle, scalar and
// string attributes, and float32 tensor datasets carrying an fnv1a64 checksum.
//
// Contract for every function here:
//   REQUIRES: the caller holds hdf5_mutex() (core/hdf5_lock.h) and has called
//             h5_quiet_errors(). Nothing here locks, so callers can hold the lock across
//             a whole file operation.
//   Errors are DataLoss / InvalidArgument Statuses whose message names `where` (the file
//   path) and the object; nothing prints or exits.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace shardtrain {

// Turns off HDF5's automatic error-stack printing, once per process: every failure is
// reported through a Status instead.
void h5_quiet_errors();

// FNV-1a, 64-bit, over `n` bytes. The checksum of a tensor is taken over its float32
// values in row-major order as little-endian bytes (the in-memory layout on x86/ARM).
uint64_t fnv1a64(const void* data, size_t n);

// Owns one hid_t and closes it with the matching H5?close on destruction.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  H5Handle(H5Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = H5I_INVALID_HID; }
  H5Handle& operator=(H5Handle&& o) noexcept;
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  ~H5Handle() { reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  // Closes now and reports whether the close succeeded (a failed file close can mean
  // data never reached the disk, so writers must check it).
  herr_t close();

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

// Creates group `name` under `parent`; its links are kept in creation order so readers
// see tensors in the order they were written (model order).
StatusOr<H5Handle> h5_group_create(hid_t parent, const std::string& name, const std::string& where);
// Opens an existing group; a missing group is DataLoss "WHERE: missing group NAME".
StatusOr<H5Handle> h5_group_open(hid_t parent, const std::string& name, const std::string& where);

// A dataset-transfer property list for reads that convert types (uint8 labels read as
// int64, uint16 tokens as int32): HDF5's default conversion buffer is 1 MiB and is
// zero-filled on every converting H5Dread, which the loaders call once per run of rows
// (once per sample of a shuffled batch). 64 KiB is plenty; HDF5 converts larger
// selections piece by piece.
StatusOr<H5Handle> h5_small_conversion_xfer(const std::string& where);

// Names of the direct children of a group, in creation order when tracked (else by name).
StatusOr<std::vector<std::string>> h5_group_children(hid_t group, const std::string& where);
// True when child `name` of `group` is a group (false: a dataset or anything else).
StatusOr<bool> h5_child_is_group(hid_t group, const std::string& name, const std::string& where);

// Scalar attributes. Integers are stored as 64-bit little-endian; strings as
// variable-length UTF-8 (h5py reads them as str). Readers accept any integer type that
// converts without overflow and fixed- or variable-length strings.
Status h5_attr_write_i64(hid_t obj, const std::string& name, int64_t v, const std::string& where);
Status h5_attr_write_u64(hid_t obj, const std::string& name, uint64_t v, const std::string& where);
Status h5_attr_write_str(hid_t obj, const std::string& name, const std::string& v, const std::string& where);
StatusOr<int64_t> h5_attr_read_i64(hid_t obj, const std::string& name, const std::string& where);
StatusOr<uint64_t> h5_attr_read_u64(hid_t obj, const std::string& name, const std::string& where);
StatusOr<std::string> h5_attr_read_str(hid_t obj, const std::string& name, const std::string& where);

// Writes a float32 dataset `name` (contiguous, shape `shape`) under `parent` with an
// `fnv1a64` uint64 attribute. REQUIRES: data.size() == shape_numel(shape).
// `label` is how errors name the tensor ("fc1.weight", "exp_avg/fc1.weight").
Status h5_tensor_write(hid_t parent, const std::string& name, const Shape& shape,
                       const std::vector<float>& data, const std::string& label,
                       const std::string& where);
// Reads it back and verifies type, shape and checksum:
// "WHERE: tensor LABEL fails its checksum (corrupt checkpoint)".
Status h5_tensor_read(hid_t parent, const std::string& name, const std::string& label,
                      const std::string& where, Shape* shape, std::vector<float>* data);

}  // namespace shardtrain

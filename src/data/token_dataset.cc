#include "data/token_dataset.h"

#include <sys/stat.h>

#include <mutex>
#include <vector>

#include "checkpoint/h5_io.h"
#include "core/check.h"
#include "core/hdf5_lock.h"
#include "core/tensor.h"

namespace shardtrain {

namespace {

// "uint16", "int32", "float32", "string", ...: how messages name a dataset's type.
std::string h5_type_name(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const size_t bits = H5Tget_size(type) * 8;
  switch (cls) {
    case H5T_INTEGER:
      return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    case H5T_FLOAT: return "float" + std::to_string(bits);
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_ARRAY: return "array";
    default: return "type class " + std::to_string(static_cast<int>(cls));
  }
}

// Opens dataset `name` of `file` into *out (the caller closes it, also on error) and
// checks that it is a 1-D integer of at most 32 bits. Returns its length.
StatusOr<int64_t> open_token_dataset(hid_t file, const std::string& path, const std::string& name,
                                     hid_t* out) {
  *out = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (*out < 0) return Status::InvalidArgument(path + ": " + name + " is not a dataset");
  const hid_t ds = *out;
  H5Handle type(H5Dget_type(ds), H5Tclose);
  H5_CHECK(type.get(), path + ": cannot read the type of " + name);
  H5Handle space(H5Dget_space(ds), H5Sclose);
  H5_CHECK(space.get(), path + ": cannot read the dataspace of " + name);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  H5_CHECK(rank, path + ": cannot read the rank of " + name);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr),
           path + ": cannot read the shape of " + name);
  const bool integer = H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) <= 4;
  if (!integer || rank != 1) {
    return Status::InvalidArgument(path + ": " + name + " is " + h5_type_name(type.get()) + " " +
                                   shape_str(Shape(dims.begin(), dims.end())) +
                                   "; token datasets must be a 1-D integer type of at most 32 bits (uint16 as "
                                   "import-text writes)");
  }
  return static_cast<int64_t>(dims[0]);
}

}  // namespace

Status token_ids_check(const int32_t* ids, int64_t count, int64_t first_index,
                       int64_t vocab_size, const std::string& path,
                       const std::string& dataset_path) {
  if (vocab_size <= 0) {
    return Status::InvalidArgument(path + ": model vocab_size " + std::to_string(vocab_size) +
                                   " must be > 0 to check " + dataset_path);
  }
  for (int64_t i = 0; i < count; ++i) {
    if (ids[i] >= 0 && ids[i] < vocab_size) continue;
    const std::string at = "token " + std::to_string(ids[i]) + " at " + dataset_path + "[" +
                           std::to_string(first_index + i) + "]";
    if (ids[i] < 0) return Status::InvalidArgument(path + ": " + at + " is negative");
    return Status::InvalidArgument(path + ": " + at + " is >= the vocabulary size " + std::to_string(vocab_size) +
                                   " (data.num_classes)");
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<TokenSplitReader>> TokenSplitReader::open(const std::string& path,
                                                                    const std::string& split,
                                                                    const std::string& dataset) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return Status::NotFound("token file " + path + " not found: create it with shardtrain "
                            "import-text or import-tokens (or ./launch/prepare-text.sh)");
  }
  std::unique_ptr<TokenSplitReader> r(new TokenSplitReader());
  r->path_ = path;
  const std::string group = "/" + split;
  r->dataset_path_ = group + "/" + dataset;

  std::lock_guard<std::mutex> lock(hdf5_mutex());
  h5_quiet_errors();
  if (H5Fis_hdf5(path.c_str()) <= 0) return Status::DataLoss(path + ": not an HDF5 file (or corrupt)");
  r->file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  H5_CHECK(r->file_, path + ": cannot open as HDF5 (corrupt?)");

  htri_t has = H5Lexists(r->file_, group.c_str(), H5P_DEFAULT);
  H5_CHECK(has, path + ": cannot look up split " + group);
  if (has == 0) {
    H5Handle root(H5Gopen2(r->file_, "/", H5P_DEFAULT), H5Gclose);
    H5_CHECK(root.get(), path + ": cannot open the root group");
    ASSIGN_OR_RETURN(std::vector<std::string> splits, h5_group_children(root.get(), path));
    std::string present;
    for (const std::string& s : splits) present += (present.empty() ? "/" : ", /") + s;
    return Status::InvalidArgument(path + ": no split " + group + " (expected dataset " +
                                   r->dataset_path_ + "; the file has " +
                                   (present.empty() ? "no splits" : present) + ")");
  }
  has = H5Lexists(r->file_, r->dataset_path_.c_str(), H5P_DEFAULT);
  H5_CHECK(has, path + ": cannot look up " + r->dataset_path_);
  if (has == 0) return Status::InvalidArgument(path + ": dataset " + r->dataset_path_ + " not found");
  ASSIGN_OR_RETURN(r->num_tokens_, open_token_dataset(r->file_, path, r->dataset_path_, &r->dataset_));

  // Both attributes are optional: a file written by other tools may carry neither.
  htri_t has_attr = H5Aexists(r->file_, kTokenAttrVocabSize);
  H5_CHECK(has_attr, path + ": cannot look up attribute " + std::string(kTokenAttrVocabSize));
  if (has_attr > 0) {
    ASSIGN_OR_RETURN(r->vocab_size_, h5_attr_read_i64(r->file_, kTokenAttrVocabSize, path));
  }
  has_attr = H5Aexists(r->file_, kTokenAttrTokenizer);
  H5_CHECK(has_attr, path + ": cannot look up attribute " + std::string(kTokenAttrTokenizer));
  if (has_attr > 0) {
    ASSIGN_OR_RETURN(r->tokenizer_, h5_attr_read_str(r->file_, kTokenAttrTokenizer, path));
  }
  return r;  // on any early return the destructor closes what was opened (lock released first)
}

TokenSplitReader::~TokenSplitReader() {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  if (dataset_ >= 0) H5Dclose(dataset_);
  if (file_ >= 0) H5Fclose(file_);
}

Status TokenSplitReader::read(int64_t start, int64_t count, int32_t* out) {
  if (start < 0 || count < 0 || start > num_tokens_ - count) {
    return Status::InvalidArgument(path_ + ": " + dataset_path_ + ": cannot read tokens [" +
                                   std::to_string(start) + ", " + std::to_string(start + count) +
                                   ") of [0, " + std::to_string(num_tokens_) + ")");
  }
  if (count == 0) return Status::Ok();
  const std::string what = path_ + ": " + dataset_path_;
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  H5Handle fspace(H5Dget_space(dataset_), H5Sclose);
  H5_CHECK(fspace.get(), what + ": cannot read the dataspace");
  const hsize_t offset = static_cast<hsize_t>(start), n = static_cast<hsize_t>(count);
  H5_CHECK(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &offset, nullptr, &n, nullptr),
           what + ": cannot select tokens");
  H5Handle mspace(H5Screate_simple(1, &n, nullptr), H5Sclose);
  H5_CHECK(mspace.get(), what + ": cannot create a memory dataspace");
  // HDF5 converts the file's integer type (uint16 as written) to int32 while reading.
  ASSIGN_OR_RETURN(H5Handle xfer, h5_small_conversion_xfer(what));
  H5_CHECK(H5Dread(dataset_, H5T_NATIVE_INT32, mspace.get(), fspace.get(), xfer.get(), out),
           what + ": cannot read tokens [" + std::to_string(start) + ", " +
               std::to_string(start + count) + ") (corrupt file?)");
  tokens_read_ += count;
  return Status::Ok();
}

}  // namespace shardtrain

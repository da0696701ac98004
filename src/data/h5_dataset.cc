#include "data/h5_dataset.h"

#include <sys/stat.h>

#include <algorithm>
#include <mutex>

#include "checkpoint/h5_io.h"
#include "core/check.h"
#include "core/hdf5_lock.h"

namespace shardtrain {

namespace {

// Rows per chunk. Reads pick scattered rows, and HDF5 decompresses a whole chunk to
// return any row of it, so chunks are kept small (32 x 784 B = 25 KB for 28x28 images).
constexpr hsize_t kChunkRows = 32;
constexpr int kDeflateLevel = 4;
// Chunk cache of the images dataset per reader. Reads are random rows, so without a cache
// every row costs a chunk decompression; a cache that holds the whole decompressed split
// (Fashion-MNIST train: 47 MB) makes every epoch after the first decompression-free.
// Capped so a large dataset costs each rank at most this much memory.
constexpr size_t kImagesCacheMaxBytes = size_t{64} << 20;
// Hash slots of that cache: HDF5 advises a prime ~100x the number of chunks that fit
// (64 MB / 25 KB chunks = 2600 chunks).
constexpr size_t kImagesCacheSlots = 262139;

// HDF5 prints an error stack to stderr on every failed call by default; shardtrain
// reports its own one-line errors instead. Call with hdf5_mutex() held.
void h5_silence_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

// Owns one HDF5 identifier and closes it with the matching H5?close. Destroy with
// hdf5_mutex() held (declare it after the lock guard).
class H5Id {
 public:
  H5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H5Id() { if (id_ >= 0) close_(id_); }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  hid_t get() const { return id_; }
  hid_t release() { hid_t id = id_; id_ = -1; return id; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string dims_str(const std::vector<hsize_t>& d) {
  return shape_str(Shape(d.begin(), d.end()));
}

// Opens `name` in `file` as an integer dataset of the given rank and returns it with its
// dims. `expected` describes the shape for the message, e.g. "[N, C, H, W]".
Status open_int_dataset(hid_t file, const std::string& path, const std::string& name,
                        int rank, const std::string& expected, hid_t dapl, hid_t* out,
                        std::vector<hsize_t>* dims) {
  htri_t exists = H5Lexists(file, name.c_str(), H5P_DEFAULT);
  if (exists < 0) return Status::DataLoss(path + ": cannot look up " + name);
  if (exists == 0) {
    return Status::InvalidArgument(path + ": dataset " + name + " not found (expected " +
                                   expected + ")");
  }
  H5Id ds(H5Dopen2(file, name.c_str(), dapl), H5Dclose);
  if (!ds.ok()) return Status::InvalidArgument(path + ": " + name + " is not a dataset");
  H5Id type(H5Dget_type(ds.get()), H5Tclose);
  H5_CHECK(type.get(), path + ": cannot read the type of " + name);
  H5T_class_t cls = H5Tget_class(type.get());
  H5_CHECK(cls, path + ": cannot read the type class of " + name);
  if (cls != H5T_INTEGER) {
    return Status::InvalidArgument(path + ": dataset " + name +
                                   " must have an integer type (class " +
                                   std::to_string(static_cast<int>(cls)) + " found)");
  }
  H5Id space(H5Dget_space(ds.get()), H5Sclose);
  H5_CHECK(space.get(), path + ": cannot read the dataspace of " + name);
  int found = H5Sget_simple_extent_ndims(space.get());
  H5_CHECK(found, path + ": cannot read the rank of " + name);
  dims->assign(static_cast<size_t>(found), 0);
  H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims->data(), nullptr),
           path + ": cannot read the shape of " + name);
  bool empty = std::find(dims->begin(), dims->end(), hsize_t{0}) != dims->end();
  if (found != rank || empty) {
    return Status::InvalidArgument(path + ": dataset " + name + " has shape " +
                                   dims_str(*dims) + ", expected " + expected +
                                   " with every dimension > 0");
  }
  *out = ds.release();
  return Status::Ok();
}

// Reads rows `indices` (strictly increasing) of `ds` into `dst` as `mem_type`: one
// H5Dread per run of consecutive indices, each a single hyperslab of exactly those rows
// (never the whole dataset). Per-run reads rather than one OR-ed selection: HDF5 1.10
// maps an irregular file selection to memory element by element (H5S_select_iterate
// dominated; ~4x slower on Fashion-MNIST batches), while a regular hyperslab whose shape
// matches the memory space takes the fast path.
Status read_rows(hid_t ds, const std::vector<int64_t>& indices, hid_t mem_type,
                 int64_t row_numel, void* dst, const std::string& what) {
  H5Id fspace(H5Dget_space(ds), H5Sclose);
  H5_CHECK(fspace.get(), "cannot read the dataspace of " + what);
  int rank = H5Sget_simple_extent_ndims(fspace.get());
  H5_CHECK(rank, "cannot read the rank of " + what);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5_CHECK(H5Sget_simple_extent_dims(fspace.get(), dims.data(), nullptr), "cannot read " + what);
  const size_t elem = H5Tget_size(mem_type);
  ST_CHECK(elem > 0, "memory type size of " + what);
  std::vector<hsize_t> start(dims.size(), 0), count(dims);
  char* out = static_cast<char*>(dst);
  // (The default conversion buffer cost 128 MiB of memset per shuffled batch of 128.)
  ASSIGN_OR_RETURN(H5Handle xfer, h5_small_conversion_xfer(what));
  for (size_t i = 0; i < indices.size();) {
    size_t j = i + 1;
    while (j < indices.size() && indices[j] == indices[j - 1] + 1) ++j;
    start[0] = static_cast<hsize_t>(indices[i]);
    count[0] = static_cast<hsize_t>(j - i);
    H5_CHECK(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr,
                                 count.data(), nullptr),
             "cannot select rows of " + what);
    hssize_t selected = H5Sget_select_npoints(fspace.get());
    ST_CHECK(selected == static_cast<hssize_t>(count[0]) * row_numel,
             what + ": selected " + std::to_string(selected) + " elements for " +
                 std::to_string(count[0]) + " rows");
    H5Id mspace(H5Screate_simple(rank, count.data(), nullptr), H5Sclose);
    H5_CHECK(mspace.get(), "cannot create a memory dataspace for " + what);
    H5_CHECK(H5Dread(ds, mem_type, mspace.get(), fspace.get(), xfer.get(),
                     out + i * static_cast<size_t>(row_numel) * elem),
             "cannot read " + what + " (corrupt file?)");
    i = j;
  }
  return Status::Ok();
}

Status write_dataset(hid_t group, const std::string& path, const std::string& name,
                     const std::vector<hsize_t>& dims, const uint8_t* data) {
  H5Id space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  H5_CHECK(space.get(), path + ": cannot create the dataspace for " + name);
  H5Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5_CHECK(dcpl.get(), path + ": cannot create properties for " + name);
  std::vector<hsize_t> chunk(dims);
  chunk[0] = std::min(dims[0], kChunkRows * (dims.size() == 1 ? 1024 : 1));  // labels: 32K
  H5_CHECK(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()),
           path + ": cannot set chunking for " + name);
  H5_CHECK(H5Pset_deflate(dcpl.get(), kDeflateLevel), path + ": cannot enable deflate for " + name);
  H5Id ds(H5Dcreate2(group, name.c_str(), H5T_STD_U8LE, space.get(), H5P_DEFAULT, dcpl.get(),
                     H5P_DEFAULT), H5Dclose);
  H5_CHECK(ds.get(), path + ": cannot create dataset " + name);
  H5_CHECK(H5Dwrite(ds.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
           path + ": cannot write dataset " + name);
  return Status::Ok();
}

}  // namespace

Status h5_write_split(const std::string& path, const std::string& split,
                      const Shape& images_shape, const uint8_t* images,
                      const uint8_t* labels) {
  if (images_shape.size() != 4 || shape_numel(images_shape) <= 0) {
    return Status::InvalidArgument(path + ": split " + split + ": images shape " +
                                   shape_str(images_shape) + ", expected [N, C, H, W]");
  }
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  h5_silence_errors();
  const bool existed = file_exists(path);
  if (existed && H5Fis_hdf5(path.c_str()) <= 0) {
    return Status::DataLoss(path + ": exists but is not an HDF5 file; refusing to touch it");
  }
  H5Id file(existed ? H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)
                    : H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT),
            H5Fclose);
  H5_CHECK(file.get(), path + ": cannot " + (existed ? "open" : "create") + " for writing");
  const std::string group_name = "/" + split;
  htri_t has = H5Lexists(file.get(), group_name.c_str(), H5P_DEFAULT);
  H5_CHECK(has, path + ": cannot look up split " + group_name);
  if (has > 0) {
    return Status::FailedPrecondition(path + ": split " + group_name +
                                      " already exists; refusing to overwrite it");
  }
  Status st = [&]() -> Status {
    H5Id group(H5Gcreate2(file.get(), group_name.c_str(), H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT), H5Gclose);
    H5_CHECK(group.get(), path + ": cannot create group " + group_name);
    std::vector<hsize_t> dims(images_shape.begin(), images_shape.end());
    RETURN_IF_ERROR(write_dataset(group.get(), path, "images", dims, images));
    return write_dataset(group.get(), path, "labels", {dims[0]}, labels);
  }();
  if (!st.ok()) {
    // Best effort: leave no half-written split behind (the original error is what matters).
    H5Ldelete(file.get(), group_name.c_str(), H5P_DEFAULT);
    return st;
  }
  H5_CHECK(H5Fflush(file.get(), H5F_SCOPE_LOCAL), path + ": cannot flush");
  return Status::Ok();
}

StatusOr<std::unique_ptr<H5SplitReader>> H5SplitReader::open(const H5SplitOptions& opts) {
  if (!file_exists(opts.path)) {
    return Status::NotFound("data file " + opts.path +
                            " not found: run ./launch/prepare-data.sh to create it");
  }
  if (!(opts.std > 0) || opts.num_classes <= 0) {
    return Status::InvalidArgument(opts.path + ": data.std must be > 0 and data.num_classes > 0");
  }
  std::unique_ptr<H5SplitReader> r(new H5SplitReader());
  r->opts_ = opts;
  const std::string group = "/" + opts.split;
  r->images_path_ = group + "/" + opts.images_dataset;
  r->labels_path_ = group + "/" + opts.labels_dataset;
  const std::string& path = opts.path;

  std::lock_guard<std::mutex> lock(hdf5_mutex());
  h5_silence_errors();
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    return Status::DataLoss(path + ": not an HDF5 file (or corrupt)");
  }
  r->file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  H5_CHECK(r->file_, path + ": cannot open as HDF5 (corrupt?)");
  htri_t has = H5Lexists(r->file_, group.c_str(), H5P_DEFAULT);
  H5_CHECK(has, path + ": cannot look up split " + group);
  if (has == 0) {
    return Status::InvalidArgument(path + ": no split " + group + " (expected datasets " +
                                   r->images_path_ + " [N, C, H, W] and " + r->labels_path_ +
                                   " [N])");
  }
  std::vector<hsize_t> idims, ldims;
  H5Id dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
  H5_CHECK(dapl.get(), path + ": cannot create dataset access properties");
  // w0 = 0: evict least recently used chunks first (suits random access).
  H5_CHECK(H5Pset_chunk_cache(dapl.get(), kImagesCacheSlots, kImagesCacheMaxBytes, 0.0),
           path + ": cannot set the chunk cache");
  RETURN_IF_ERROR(open_int_dataset(r->file_, path, r->images_path_, 4, "[N, C, H, W]",
                                   dapl.get(), &r->images_, &idims));
  RETURN_IF_ERROR(open_int_dataset(r->file_, path, r->labels_path_, 1,
                                   "[" + std::to_string(idims[0]) + "]", H5P_DEFAULT,
                                   &r->labels_, &ldims));
  if (ldims[0] != idims[0]) {
    return Status::InvalidArgument(path + ": dataset " + r->labels_path_ + " has shape " +
                                   dims_str(ldims) + ", expected [" + std::to_string(idims[0]) +
                                   "] (one label per image in " + r->images_path_ + ")");
  }
  r->num_samples_ = static_cast<int64_t>(idims[0]);
  r->sample_shape_.assign(idims.begin() + 1, idims.end());
  r->sample_numel_ = shape_numel(r->sample_shape_);
  return r;  // on any early return the destructor closes what was opened (lock released first)
}

H5SplitReader::~H5SplitReader() {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  if (labels_ >= 0) H5Dclose(labels_);
  if (images_ >= 0) H5Dclose(images_);
  if (file_ >= 0) H5Fclose(file_);
}

Status H5SplitReader::read_locked(const std::vector<int64_t>& indices,
                                  std::vector<uint8_t>* pixels, std::vector<int64_t>* labels) {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  const std::string& path = opts_.path;
  RETURN_IF_ERROR(read_rows(images_, indices, H5T_NATIVE_UINT8, sample_numel_, pixels->data(),
                            path + ": " + images_path_));
  return read_rows(labels_, indices, H5T_NATIVE_INT64, 1, labels->data(),
                   path + ": " + labels_path_);
}

Status H5SplitReader::read(const std::vector<int64_t>& indices, float* images,
                           int32_t* labels) {
  if (indices.empty()) return Status::Ok();  // a rank's slice of a short batch may be empty
  for (size_t i = 0; i < indices.size(); ++i) {
    ST_CHECK(indices[i] >= 0 && indices[i] < num_samples_ && (i == 0 || indices[i] > indices[i - 1]),
             "sample indices must be strictly increasing and in [0, " +
                 std::to_string(num_samples_) + ")");
  }
  const size_t k = indices.size();
  // Integer images wider than 8 bits convert to uint8 with HDF5's saturating conversion.
  std::vector<uint8_t> pixels(k * static_cast<size_t>(sample_numel_));
  std::vector<int64_t> raw_labels(k);
  RETURN_IF_ERROR(read_locked(indices, &pixels, &raw_labels));
  rows_read_ += static_cast<int64_t>(k);

  // Conversion runs outside the HDF5 lock so a checkpoint write is not held up by it.
  for (size_t i = 0; i < k; ++i) {
    if (raw_labels[i] < 0 || raw_labels[i] >= opts_.num_classes) {
      return Status::DataLoss(opts_.path + ": " + labels_path_ + "[" + std::to_string(indices[i]) +
                              "] = " + std::to_string(raw_labels[i]) + " is outside [0, " +
                              std::to_string(opts_.num_classes) + ") (data.num_classes)");
    }
    labels[i] = static_cast<int32_t>(raw_labels[i]);
  }
  // Exactly (x / 255 - mean) / std in float, as the PyTorch reference computes it.
  const float mean = opts_.mean, std = opts_.std;
  for (size_t i = 0; i < pixels.size(); ++i) images[i] = (pixels[i] / 255.0f - mean) / std;
  return Status::Ok();
}

}  // namespace shardtrain

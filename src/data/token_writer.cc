#include "data/token_writer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "core/check.h"
#include "core/hdf5_lock.h"
#include "data/token_dataset.h"

namespace shardtrain {

namespace {

// Tokens per chunk: 1 Mi uint16 = 2 MiB. A training window (~1K tokens) then touches one
// chunk, or two; chunks above HDF5's 1 MiB default chunk cache are read directly into
// the caller's buffer for just the selected range. No compression: token ids barely
// compress and every window read would decompress a whole chunk.
constexpr int64_t kTokenChunk = int64_t{1} << 20;

// lstat: a dangling symlink at `path` counts as existing (link() would refuse it too).
bool path_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// PATH.tmp.PID.N: unique per process and writer, in the target's directory so that
// link() stays within one file system.
std::string temp_path_for(const std::string& path) {
  static std::atomic<int> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

Status check_info(const std::string& path, const TokenFileInfo& info) {
  if (info.tokenizer.empty() || info.vocab_size < 1 || info.vocab_size > 65536) {
    return Status::InvalidArgument(path + ": tokenizer '" + info.tokenizer + "' with vocab_size " +
                                   std::to_string(info.vocab_size) +
                                   " cannot be stored (ids are uint16: vocab_size must be in [1, 65536])");
  }
  return Status::Ok();
}

// An existing file must carry the same tokenizer and vocab_size before splits are added.
Status check_existing_attrs(hid_t file, const std::string& path, const TokenFileInfo& info) {
  htri_t has = H5Aexists(file, kTokenAttrTokenizer);
  H5_CHECK(has, path + ": cannot look up attribute " + std::string(kTokenAttrTokenizer));
  if (has == 0) {
    return Status::FailedPrecondition(path + ": exists but is not a token file (no " +
                                      kTokenAttrTokenizer + " attribute); refusing to add tokens to it");
  }
  ASSIGN_OR_RETURN(std::string tokenizer, h5_attr_read_str(file, kTokenAttrTokenizer, path));
  ASSIGN_OR_RETURN(int64_t vocab, h5_attr_read_i64(file, kTokenAttrVocabSize, path));
  if (tokenizer != info.tokenizer || vocab != info.vocab_size) {
    return Status::FailedPrecondition(path + ": holds tokenizer '" + tokenizer + "' with vocab_size " +
                                      std::to_string(vocab) + ", not '" + info.tokenizer +
                                      "' with vocab_size " + std::to_string(info.vocab_size) +
                                      "; refusing to mix them in one file");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<TokenFileWriter>> TokenFileWriter::create(const std::string& path,
                                                                   const TokenFileInfo& info) {
  RETURN_IF_ERROR(check_info(path, info));
  if (path_exists(path)) {
    return Status::FailedPrecondition(path + ": exists already; refusing to replace it");
  }
  std::unique_ptr<TokenFileWriter> w(new TokenFileWriter());
  w->path_ = path;
  w->write_path_ = temp_path_for(path);
  w->new_file_ = true;
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  h5_quiet_errors();
  // EXCL: never truncate a file of the same name, even a stale temporary.
  w->file_ = H5Handle(H5Fcreate(w->write_path_.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT),
                      H5Fclose);
  if (!w->file_.valid()) {
    w->new_file_ = false;  // nothing of ours to remove
    return Status::Internal(path + ": cannot create the temporary file " + w->write_path_ +
                            " (is the directory there and writable?)");
  }
  RETURN_IF_ERROR(h5_attr_write_i64(w->file_.get(), kTokenAttrVocabSize, info.vocab_size, path));
  RETURN_IF_ERROR(h5_attr_write_str(w->file_.get(), kTokenAttrTokenizer, info.tokenizer, path));
  return w;  // on an early return the destructor (after the lock is released) removes it
}

StatusOr<std::unique_ptr<TokenFileWriter>> TokenFileWriter::open_or_create(const std::string& path,
                                                                           const TokenFileInfo& info) {
  RETURN_IF_ERROR(check_info(path, info));
  if (!path_exists(path)) return create(path, info);
  std::unique_ptr<TokenFileWriter> w(new TokenFileWriter());
  w->path_ = w->write_path_ = path;
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  h5_quiet_errors();
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    return Status::DataLoss(path + ": exists but is not an HDF5 file; refusing to touch it");
  }
  w->file_ = H5Handle(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
  H5_CHECK(w->file_.get(), path + ": cannot open for writing");
  RETURN_IF_ERROR(check_existing_attrs(w->file_.get(), path, info));
  return w;
}

TokenFileWriter::~TokenFileWriter() {
  if (committed_) return;
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  rollback_locked();
}

void TokenFileWriter::rollback_locked() {
  // Best effort throughout: the error that brought us here is the one worth reporting.
  dataset_.reset();
  if (!split_.empty()) added_.push_back(split_);
  split_.clear();
  if (new_file_) {
    file_.reset();
    ::unlink(write_path_.c_str());
    return;
  }
  for (const std::string& s : added_) {
    if (file_.valid()) H5Ldelete(file_.get(), ("/" + s).c_str(), H5P_DEFAULT);
  }
  added_.clear();
  file_.reset();
}

Status TokenFileWriter::begin_split(const std::string& split, int64_t num_tokens) {
  ST_CHECK(split_.empty() && !committed_, path_ + ": begin_split with split /" + split_ + " in progress");
  if (split.empty() || split.find('/') != std::string::npos) {
    return Status::InvalidArgument(path_ + ": split name must be non-empty without '/' (got '" + split + "')");
  }
  const std::string group = "/" + split, what = path_ + ": " + group + "/" + kTokenDataset;
  if (num_tokens <= 0) return Status::InvalidArgument(what + ": a split needs at least one token");
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  htri_t has = H5Lexists(file_.get(), group.c_str(), H5P_DEFAULT);
  H5_CHECK(has, path_ + ": cannot look up split " + group);
  if (has > 0) {
    return Status::FailedPrecondition(path_ + ": split " + group + " already exists; refusing to overwrite it");
  }
  ASSIGN_OR_RETURN(H5Handle g, h5_group_create(file_.get(), group, path_));
  split_ = split;  // from here on, a failure removes the group again
  split_total_ = num_tokens;
  split_written_ = 0;

  const hsize_t dims = static_cast<hsize_t>(num_tokens);
  const hsize_t chunk = static_cast<hsize_t>(std::min(num_tokens, kTokenChunk));
  H5Handle space(H5Screate_simple(1, &dims, nullptr), H5Sclose);
  if (!space.valid()) return Status::Internal(what + ": cannot create the dataspace");
  H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (!dcpl.valid() || H5Pset_chunk(dcpl.get(), 1, &chunk) < 0) {
    return Status::Internal(what + ": cannot set chunking");
  }
  dataset_ = H5Handle(H5Dcreate2(g.get(), kTokenDataset, H5T_STD_U16LE, space.get(), H5P_DEFAULT,
                                 dcpl.get(), H5P_DEFAULT), H5Dclose);
  if (!dataset_.valid()) return Status::Internal(what + ": cannot create the dataset");
  return Status::Ok();
}

Status TokenFileWriter::append(const uint16_t* tokens, int64_t count) {
  ST_CHECK(!split_.empty() && count >= 0 && count <= split_total_ - split_written_,
           path_ + ": append of " + std::to_string(count) + " tokens to split /" + split_ +
               " with " + std::to_string(split_total_ - split_written_) + " still to come");
  if (count == 0) return Status::Ok();
  const std::string what = path_ + ": /" + split_ + "/" + kTokenDataset;
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  H5Handle fspace(H5Dget_space(dataset_.get()), H5Sclose);
  const hsize_t offset = static_cast<hsize_t>(split_written_), n = static_cast<hsize_t>(count);
  if (!fspace.valid() ||
      H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &offset, nullptr, &n, nullptr) < 0) {
    return Status::Internal(what + ": cannot select tokens to write");
  }
  H5Handle mspace(H5Screate_simple(1, &n, nullptr), H5Sclose);
  if (!mspace.valid() ||
      H5Dwrite(dataset_.get(), H5T_NATIVE_UINT16, mspace.get(), fspace.get(), H5P_DEFAULT, tokens) < 0) {
    return Status::Internal(what + ": cannot write tokens [" + std::to_string(split_written_) + ", " +
                            std::to_string(split_written_ + count) + ") (disk full?)");
  }
  split_written_ += count;
  return Status::Ok();
}

Status TokenFileWriter::end_split() {
  ST_CHECK(!split_.empty(), path_ + ": end_split without a split in progress");
  if (split_written_ != split_total_) {
    return Status::Internal(path_ + ": split /" + split_ + " got " + std::to_string(split_written_) +
                            " of its " + std::to_string(split_total_) + " tokens");
  }
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  if (dataset_.close() < 0) return Status::Internal(path_ + ": cannot close /" + split_ + "/" + kTokenDataset);
  added_.push_back(split_);
  split_.clear();
  return Status::Ok();
}

Status TokenFileWriter::commit() {
  ST_CHECK(split_.empty() && !committed_, path_ + ": commit with split /" + split_ + " in progress");
  {
    std::lock_guard<std::mutex> lock(hdf5_mutex());
    // A failed flush or close can mean data never reached the disk: the file is not done.
    if (H5Fflush(file_.get(), H5F_SCOPE_LOCAL) < 0 || file_.close() < 0) {
      return Status::Internal(path_ + ": cannot flush and close (disk full?)");
    }
  }
  if (new_file_) {
    // link() (not rename()) fails with EEXIST rather than replace a file that appeared
    // at `path` while we wrote; either way the temporary name goes.
    const int rc = ::link(write_path_.c_str(), path_.c_str());
    const int err = errno;
    ::unlink(write_path_.c_str());
    new_file_ = false;  // nothing left to roll back
    if (rc != 0) {
      if (err == EEXIST) {
        return Status::FailedPrecondition(path_ + ": appeared while importing; refusing to replace it");
      }
      return Status::Internal(path_ + ": cannot link " + write_path_ + " into place: " + std::strerror(err));
    }
  }
  committed_ = true;
  return Status::Ok();
}

}  // namespace shardtrain

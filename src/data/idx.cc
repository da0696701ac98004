#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace shardtrain {

namespace {

constexpr uint32_t kIdxMagicImages = 0x0803;  // unsigned byte, 3 dims
constexpr uint32_t kIdxMagicLabels = 0x0801;  // unsigned byte, 1 dim
// Guards against a corrupt header asking for an absurd allocation: 16 GiB is far beyond
// any IDX file in circulation.
constexpr int64_t kIdxMaxBytes = int64_t{1} << 34;

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%04x", v);
  return buf;
}

// Reads exactly n bytes or explains why not (truncated vs corrupt gzip stream).
Status read_exact(gzFile f, const std::string& path, void* dst, size_t n, const char* what) {
  char* p = static_cast<char*>(dst);
  size_t done = 0;
  while (done < n) {
    // gzread takes an unsigned count: read in slices well below UINT_MAX.
    unsigned want = static_cast<unsigned>(std::min<size_t>(n - done, size_t{1} << 26));
    int got = gzread(f, p + done, want);
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      // A gzip stream cut short reports Z_BUF_ERROR ("unexpected end of file").
      if (err == Z_BUF_ERROR) {
        return Status::DataLoss(path + ": truncated: gzip stream ends inside " + what);
      }
      return Status::DataLoss(path + ": corrupt data while reading " + what + ": " +
                              (err == Z_ERRNO ? std::strerror(errno) : msg));
    }
    if (got == 0) {
      return Status::DataLoss(path + ": truncated: " + what + " needs " + std::to_string(n) +
                              " bytes, file ends after " + std::to_string(done));
    }
    done += static_cast<size_t>(got);
  }
  return Status::Ok();
}

// Opens `path`, checks the magic and returns the dimensions; `f` is left at the data.
StatusOr<std::vector<int64_t>> read_header(const std::string& path, uint32_t magic,
                                           GzFile* f) {
  f->reset(gzopen(path.c_str(), "rb"));
  if (!*f) return Status::NotFound(path + ": cannot open: " + std::strerror(errno));
  unsigned char head[4];
  RETURN_IF_ERROR(read_exact(f->get(), path, head, 4, "the IDX magic"));
  uint32_t got = (uint32_t{head[0]} << 24) | (uint32_t{head[1]} << 16) |
                 (uint32_t{head[2]} << 8) | head[3];
  if (got != magic) {
    return Status::InvalidArgument(path + ": not an IDX file (magic " + hex(got) +
                                   ", expected " + hex(magic) + ")");
  }
  const int ndims = static_cast<int>(magic & 0xff);
  std::vector<int64_t> dims(ndims);
  int64_t bytes = 1;
  for (int i = 0; i < ndims; ++i) {
    unsigned char d[4];
    RETURN_IF_ERROR(read_exact(f->get(), path, d, 4, "the IDX dimensions"));
    dims[i] = (int64_t{d[0]} << 24) | (int64_t{d[1]} << 16) | (int64_t{d[2]} << 8) | d[3];
    if (dims[i] == 0) {
      return Status::InvalidArgument(path + ": IDX dimension " + std::to_string(i) + " is 0");
    }
    bytes *= dims[i];
    if (bytes > kIdxMaxBytes) {
      return Status::InvalidArgument(path + ": IDX dimensions describe more than " +
                                     std::to_string(kIdxMaxBytes) + " bytes: corrupt header");
    }
  }
  return dims;
}

}  // namespace

StatusOr<IdxImages> idx_read_images(const std::string& path) {
  GzFile f;
  ASSIGN_OR_RETURN(std::vector<int64_t> dims, read_header(path, kIdxMagicImages, &f));
  IdxImages out;
  out.count = dims[0];
  out.rows = dims[1];
  out.cols = dims[2];
  out.pixels.resize(static_cast<size_t>(out.count * out.rows * out.cols));
  RETURN_IF_ERROR(read_exact(f.get(), path, out.pixels.data(), out.pixels.size(),
                             "image data"));
  return out;
}

StatusOr<std::vector<uint8_t>> idx_read_labels(const std::string& path) {
  GzFile f;
  ASSIGN_OR_RETURN(std::vector<int64_t> dims, read_header(path, kIdxMagicLabels, &f));
  std::vector<uint8_t> labels(static_cast<size_t>(dims[0]));
  RETURN_IF_ERROR(read_exact(f.get(), path, labels.data(), labels.size(), "label data"));
  return labels;
}

StatusOr<IdxSplit> idx_read_split(const std::string& images_path,
                                  const std::string& labels_path) {
  IdxSplit split;
  ASSIGN_OR_RETURN(split.images, idx_read_images(images_path));
  ASSIGN_OR_RETURN(split.labels, idx_read_labels(labels_path));
  if (static_cast<int64_t>(split.labels.size()) != split.images.count) {
    return Status::InvalidArgument(
        "image/label count mismatch: " + images_path + " holds " +
        std::to_string(split.images.count) + " images but " + labels_path + " holds " +
        std::to_string(split.labels.size()) + " labels");
  }
  return split;
}

}  // namespace shardtrain

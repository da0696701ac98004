#include "data/input_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace shardtrain {

StatusOr<std::unique_ptr<InputFile>> InputFile::open(const std::string& path) {
  std::unique_ptr<InputFile> in(new InputFile());
  in->path_ = path;
  in->f_ = std::fopen(path.c_str(), "rb");
  if (!in->f_) return Status::NotFound(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fileno(in->f_), &st) != 0) {
    return Status::DataLoss(path + ": cannot stat: " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::InvalidArgument(path + ": not a regular file (its size must be known in advance)");
  }
  in->size_ = static_cast<int64_t>(st.st_size);
  return in;
}

InputFile::~InputFile() {
  if (f_) std::fclose(f_);
}

Status InputFile::read_exact(void* dst, size_t n, const std::string& what) {
  size_t got = std::fread(dst, 1, n, f_);
  offset_ += static_cast<int64_t>(got);
  if (got == n) return Status::Ok();
  if (std::ferror(f_)) {
    return Status::DataLoss(path_ + ": read error in " + what + ": " + std::strerror(errno));
  }
  return Status::DataLoss(path_ + ": truncated: " + what + " needs " + std::to_string(n) +
                          " bytes, only " + std::to_string(got) +
                          " remain (did the file change while importing?)");
}

}  // namespace shardtrain

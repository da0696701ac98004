// A plain input file read front to back in caller-sized pieces, for the importers that
// stream files far larger than the memory they may use (llm.c shards are 200 MB each).
//
// Errors name the file: NotFound (cannot open), InvalidArgument (not a regular file: a
// pipe or directory has no size to plan splits with), DataLoss (ends early, read error).
// Thread-compatible; owns its FILE*.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "core/status.h"

namespace shardtrain {

class InputFile {
 public:
  static StatusOr<std::unique_ptr<InputFile>> open(const std::string& path);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const { return path_; }
  int64_t size() const { return size_; }  // bytes, as stat() saw it when opened
  int64_t offset() const { return offset_; }  // bytes read so far

  // Reads exactly n bytes into dst. A file that ends first is DataLoss:
  // "PATH: truncated: WHAT needs N bytes, only M remain ...".
  Status read_exact(void* dst, size_t n, const std::string& what);

 private:
  InputFile() = default;
  std::string path_;
  std::FILE* f_ = nullptr;
  int64_t size_ = 0, offset_ = 0;
};

}  // namespace shardtrain

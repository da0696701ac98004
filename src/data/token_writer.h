// Writes token files (layout in token_dataset.h): the one place that creates them, for
// import-text and import-tokens.
//
// Splits are streamed: begin_split() declares how many tokens a split will hold, append()
// writes the next piece into the chunked dataset, end_split() checks the count. Memory
// stays bounded by what the caller passes to append(), however large the split.
//
// Nothing existing is replaced:
//   create():          a new file is written as a temporary beside `path`
//                      (PATH.tmp.PID.N) and linked into place by commit(), so `path`
//                      appears complete or not at all, and link() refuses to replace a
//                      file that appeared meanwhile;
//   open_or_create():  an existing token file gets new splits in place, as import-idx
//                      does (a split that exists is never overwritten; a crash mid-write
//                      can damage the file).
// Without commit(), the destructor removes the temporary file, or the splits this writer
// added to an existing file.
//
// Thread-compatible; every HDF5 call holds hdf5_mutex() (core/hdf5_lock.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/h5_io.h"
#include "core/status.h"

namespace shardtrain {

// The file attributes: which tokenizer produced the ids, and how many ids it has.
struct TokenFileInfo {
  std::string tokenizer;
  int64_t vocab_size = 0;
};
inline const TokenFileInfo kTokenFileBytes{"bytes", 256};   // one token per byte of text
inline const TokenFileInfo kTokenFileGpt2{"gpt2", 50257};   // GPT-2 BPE (llm.c shards)

class TokenFileWriter {
 public:
  // FailedPrecondition when `path` exists. InvalidArgument when info is not storable
  // (empty tokenizer, vocab_size outside [1, 65536]: ids are stored as uint16).
  static StatusOr<std::unique_ptr<TokenFileWriter>> create(const std::string& path,
                                                           const TokenFileInfo& info);
  // create() when `path` does not exist; otherwise opens it to add splits. An existing
  // file must be HDF5 (else DataLoss) with the same tokenizer and vocab_size attributes
  // (else FailedPrecondition naming both).
  static StatusOr<std::unique_ptr<TokenFileWriter>> open_or_create(const std::string& path,
                                                                   const TokenFileInfo& info);
  ~TokenFileWriter();
  TokenFileWriter(const TokenFileWriter&) = delete;
  TokenFileWriter& operator=(const TokenFileWriter&) = delete;

  // Starts split `split` (a name without '/') of exactly num_tokens (> 0) tokens.
  // FailedPrecondition when the split exists already. REQUIRES: no split in progress.
  Status begin_split(const std::string& split, int64_t num_tokens);
  // Writes the next `count` tokens of the split in progress.
  // REQUIRES: a split in progress with at least `count` tokens still to come.
  Status append(const uint16_t* tokens, int64_t count);
  // Ends the split in progress; Internal when fewer tokens came than begin_split declared.
  Status end_split();
  // Flushes and closes the file; a new file is then linked to `path`.
  // REQUIRES: no split in progress. Call at most once.
  Status commit();

 private:
  TokenFileWriter() = default;
  void rollback_locked();  // REQUIRES: hdf5_mutex() held

  std::string path_, write_path_;  // write_path_: the temporary for a new file, else path_
  bool new_file_ = false, committed_ = false;
  H5Handle file_, dataset_;
  std::string split_;  // the split in progress, "" between splits
  int64_t split_total_ = 0, split_written_ = 0;
  std::vector<std::string> added_;  // splits written, removed again unless committed
};

}  // namespace shardtrain

// Token splits for language models: the on-disk layout, the reader the loader calls, and
// the arithmetic that cuts a split into training windows.
//
// Layout (written by token_writer.h for import-text and import-tokens):
//   file attributes   vocab_size  int64   256 for byte-level text, 50257 for GPT-2 ids
//                     tokenizer   string  "bytes" or "gpt2"
//   /<split>/tokens   uint16 [N]  chunked (1 Mi tokens per chunk), uncompressed
// One group per split (/train, /val). The reader accepts any 1-D integer dataset of at
// most 32 bits (a file written by h5py with int32 ids works too).
//
// Windows: for seq_len T, window w covers tokens [w*T, w*T + T + 1); its first T tokens
// are the inputs and its last T the targets (the inputs shifted by one). Consecutive
// windows share one token, so N tokens hold (N - 1) / T windows.
//
// Every HDF5 call holds hdf5_mutex() (core/hdf5_lock.h), as in h5_dataset.h.
#pragma once

#include <hdf5.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace shardtrain {

inline constexpr const char* kTokenDataset = "tokens";
inline constexpr const char* kTokenAttrVocabSize = "vocab_size";
inline constexpr const char* kTokenAttrTokenizer = "tokenizer";

// Number of whole windows of seq_len T in N tokens: (N - 1) / T; 0 when N < T + 1.
// REQUIRES: seq_len > 0 (0 is returned otherwise).
constexpr int64_t token_window_count(int64_t num_tokens, int64_t seq_len) {
  return (seq_len <= 0 || num_tokens < seq_len + 1) ? 0 : (num_tokens - 1) / seq_len;
}
// First token of window w, and how many tokens a window reads (T + 1).
constexpr int64_t token_window_start(int64_t window, int64_t seq_len) { return window * seq_len; }
constexpr int64_t token_window_span(int64_t seq_len) { return seq_len + 1; }

// Splits one window's T + 1 ids into inputs = window[0, T) and targets = window[1, T + 1).
// REQUIRES: window holds seq_len + 1 ids; inputs and targets hold seq_len each.
inline void token_window_split(const int32_t* window, int64_t seq_len, int32_t* inputs,
                               int32_t* targets) {
  for (int64_t i = 0; i < seq_len; ++i) {
    inputs[i] = window[i];
    targets[i] = window[i + 1];
  }
}

// Checks that ids[0, count) lie in [0, vocab_size). `ids[i]` is token first_index + i of
// dataset `dataset_path` ("/train/tokens") in file `path`. The first offender is
// InvalidArgument, e.g.
//   "data/x.h5: token 12345 at /train/tokens[987] is >= the vocabulary size 256 (data.num_classes)"
//   "data/x.h5: token -1 at /train/tokens[3] is negative"
Status token_ids_check(const int32_t* ids, int64_t count, int64_t first_index,
                       int64_t vocab_size, const std::string& path,
                       const std::string& dataset_path);

// One token split opened read-only. Thread-compatible: read() may be called from any
// thread, one call at a time per reader (HDF5 calls are serialised by hdf5_mutex()).
class TokenSplitReader {
 public:
  // NotFound: the file does not exist (the message says how to create it).
  // DataLoss: not an HDF5 file, or corrupt.
  // InvalidArgument: the split or dataset is missing, or the dataset is not a 1-D integer
  //   type of at most 32 bits, e.g.
  //   "data/x.h5: /train/tokens is float32 [1000]; token datasets must be a 1-D integer
  //    type (uint16 as import-text writes)".
  static StatusOr<std::unique_ptr<TokenSplitReader>> open(const std::string& path,
                                                          const std::string& split,
                                                          const std::string& dataset = kTokenDataset);
  ~TokenSplitReader();
  TokenSplitReader(const TokenSplitReader&) = delete;
  TokenSplitReader& operator=(const TokenSplitReader&) = delete;

  int64_t num_tokens() const { return num_tokens_; }
  // The file's vocab_size attribute; 0 when the file has none.
  int64_t vocab_size() const { return vocab_size_; }
  // The file's tokenizer attribute ("bytes", "gpt2"); empty when the file has none.
  const std::string& tokenizer() const { return tokenizer_; }
  const std::string& path() const { return path_; }
  const std::string& dataset_path() const { return dataset_path_; }  // "/train/tokens"

  // Reads tokens [start, start + count) into out[0, count) as int32, selecting exactly
  // that range in the file (never the whole dataset). A range outside [0, num_tokens())
  // is InvalidArgument naming file and dataset. uint32 ids above INT32_MAX read as
  // INT32_MAX (HDF5 saturates), which any vocab check then rejects.
  Status read(int64_t start, int64_t count, int32_t* out);

  // token_ids_check() for ids read from this split starting at token first_index.
  Status check_ids(const int32_t* ids, int64_t count, int64_t first_index,
                   int64_t vocab_size) const {
    return token_ids_check(ids, count, first_index, vocab_size, path_, dataset_path_);
  }

  // Tokens selected in the file by all read() calls so far (for tests and diagnostics).
  int64_t tokens_read() const { return tokens_read_.load(); }

 private:
  TokenSplitReader() = default;

  std::string path_, dataset_path_, tokenizer_;
  hid_t file_ = -1, dataset_ = -1;
  int64_t num_tokens_ = 0, vocab_size_ = 0;
  std::atomic<int64_t> tokens_read_{0};
};

}  // namespace shardtrain

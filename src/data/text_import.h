// Byte-level text import (shardtrain import-text): every byte of the input files is one
// token (vocab 256, tokenizer "bytes"), the files concatenated in the order given. The
// last val_fraction of the tokens become /val, the rest /train (layout: token_dataset.h).
// Inputs are streamed through a bounded buffer; the output is written by TokenFileWriter
// as a new file only (never replacing one).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace shardtrain {

struct TextImportOptions {
  std::vector<std::string> inputs;  // plain files, concatenated in this order
  std::string out;                  // must not exist
  double val_fraction = 0.05;       // in (0, 0.5]
  // /val gets at least this many tokens when both splits can hold that many: one window
  // of seq_len 1024 (token_dataset.h), so a small corpus still has something to evaluate.
  int64_t min_val_tokens = 1025;
};

struct TextImportCounts {
  int64_t train_tokens = 0, val_tokens = 0;
};

// How many of `total` tokens go to /val: round(total * val_fraction), raised to
// min_val_tokens when total >= 2 * min_val_tokens, and kept in [1, total - 1] so neither
// split is empty. REQUIRES: total >= 2, val_fraction in (0, 0.5].
int64_t text_val_token_count(int64_t total, double val_fraction, int64_t min_val_tokens);

// InvalidArgument: no inputs, val_fraction outside (0, 0.5], fewer than 2 bytes in all.
// FailedPrecondition: opts.out exists. NotFound / DataLoss: an input cannot be opened or
// read (the message names it). Nothing is left at opts.out on failure.
StatusOr<TextImportCounts> text_import(const TextImportOptions& opts);

}  // namespace shardtrain

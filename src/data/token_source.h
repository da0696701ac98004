// TokenSource: a 1-D token split (data/token_dataset.h) as samples of seq_len + 1
// consecutive tokens: window w covers tokens [w * T, w * T + T + 1) and gives "tokens"
// (the first T, int32 [T]) and "targets" (the last T: each position's next token).
// Windows share one token at their seams, so every token except the very last is
// predicted once per epoch. Only the windows asked for are read (one hyperslab each).
#pragma once

#include <memory>
#include <string>

#include "data/sample_source.h"
#include "data/token_dataset.h"

namespace shardtrain {

struct TokenSourceOptions {
  std::string path, split, dataset = "tokens";
  int64_t seq_len = 0;
  int64_t vocab_size = 0;  // token ids must be below it (the model's vocabulary)
};

class TokenSource final : public SampleSource {
 public:
  // Errors of TokenSplitReader::open pass through; InvalidArgument when the split is
  // shorter than one window or the file declares a vocabulary larger than vocab_size.
  static StatusOr<std::unique_ptr<TokenSource>> open(const TokenSourceOptions& opts);
  int64_t num_samples() const override { return windows_; }
  const std::vector<FieldSpec>& fields() const override { return fields_; }
  // DataLoss naming file, dataset, position and value for a token id >= vocab_size.
  Status read(const std::vector<int64_t>& indices, std::vector<BatchTensor>* out) override;

 private:
  TokenSourceOptions opts_;
  std::unique_ptr<TokenSplitReader> reader_;
  int64_t windows_ = 0;
  std::vector<FieldSpec> fields_;
};

}  // namespace shardtrain
